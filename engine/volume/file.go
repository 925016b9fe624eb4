package volume

import (
	"errors"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// File is a local file as an upload source. Its extents come from
// SEEK_DATA and SEEK_HOLE, so a sparse image is sent as what it stores.
type File struct {
	f    *os.File
	size int64
}

// OpenFile opens path for upload.
func OpenFile(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &File{f: f, size: st.Size()}, nil
}

func (f *File) Size() int64                             { return f.size }
func (f *File) ReadAt(p []byte, off int64) (int, error) { return f.f.ReadAt(p, off) }
func (f *File) Close() error                            { return f.f.Close() }

// Extents lists the file's data and holes in order, covering its length.
func (f *File) Extents() ([]Extent, error) {
	var out []Extent
	fd := int(f.f.Fd())
	for off := int64(0); off < f.size; {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			data = f.size // only a hole is left
		} else if err != nil {
			if errors.Is(err, unix.EINVAL) && len(out) == 0 {
				// No SEEK_DATA on this file system: all data.
				return []Extent{{0, f.size, true}}, nil
			}
			return nil, err
		}
		if data > off {
			out = append(out, Extent{off, data - off, false})
		}
		if data >= f.size {
			break
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			return nil, err
		}
		hole = min(hole, f.size)
		out = append(out, Extent{data, hole - data, true})
		off = hole
	}
	if _, err := f.f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	return out, nil
}

// DataBytes is how many bytes of extents are data.
func DataBytes(ext []Extent) int64 {
	var n int64
	for _, e := range ext {
		if e.Data {
			n += e.Length
		}
	}
	return n
}
