package span

import "io"

// Scan reads count entries of entrySize bytes at off, 1 MiB at a time, so
// a large table never needs one large buffer, and calls fn for each entry.
// Read errors are returned as they are, for the caller to classify.
func Scan(r io.ReaderAt, off, count int64, entrySize int, fn func(i int64, e []byte) error) error {
	per := max(1, int64(1<<20)/int64(entrySize))
	buf := make([]byte, min(per, max(count, 0))*int64(entrySize))
	for first := int64(0); first < count; first += per {
		n := min(per, count-first)
		b := buf[:n*int64(entrySize)]
		if _, err := r.ReadAt(b, off+first*int64(entrySize)); err != nil {
			return &ReadError{Off: off + first*int64(entrySize), Err: err}
		}
		for i := int64(0); i < n; i++ {
			if err := fn(first+i, b[i*int64(entrySize):(i+1)*int64(entrySize)]); err != nil {
				return err
			}
		}
	}
	return nil
}

// ReadError is a failed read of a table Scan was reading.
type ReadError struct {
	Off int64
	Err error
}

func (e *ReadError) Error() string { return e.Err.Error() }
func (e *ReadError) Unwrap() error { return e.Err }
