// Package rawcopy writes a raw disk from raw source ranges inside the kernel:
// only the ranges the source file system holds data for are copied
// (SEEK_DATA/SEEK_HOLE), with copy_file_range, which a file system that
// shares extents (XFS, btrfs) turns into a reflink. qemu-img reads every
// block into user space and writes it back; for raw to raw there is nothing
// to decode, so that is two passes through memory for nothing.
package rawcopy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// Segment is a range of a raw source file that fills the next Length bytes
// of the output: a raw image is one segment, a flat VMDK one per extent.
type Segment struct {
	Path   string
	Offset int64
	Length int64
}

// Stats says what a copy did.
type Stats struct {
	// Data is the bytes copied: the source's allocated ranges.
	Data int64
	// Kernel is false when copy_file_range was refused (another file
	// system, an old kernel) and the data went through a buffer.
	Kernel bool
}

// chunk bounds one copy_file_range call, so a cancellation is seen within
// a fraction of a second.
const chunk = 64 << 20

// extent is a data range of a source file, and where it lands in the output.
type extent struct {
	src      *os.File
	off, len int64
	dst      int64
}

// Copy creates (or truncates) dst to size bytes and fills it from
// segs, in order. Ranges the source holds no data for stay holes. progress,
// if set, is called with the bytes copied so far and the total.
func Copy(ctx context.Context, dst string, size int64, segs []Segment, progress func(done, total int64)) (Stats, error) {
	return copyTo(ctx, dst, size, segs, progress, nil)
}

// ReadError is a failure to read the source, at Pos in the guest's disk.
type ReadError struct {
	Path   string
	Offset int64 // in Path
	Pos    int64 // in the guest's disk
	Err    error
}

func (e *ReadError) Error() string {
	return fmt.Sprintf("reading %s at byte %d: %v", e.Path, e.Offset, e.Err)
}
func (e *ReadError) Unwrap() error { return e.Err }

// WriteError is a failure to write the output at Pos.
type WriteError struct {
	Pos int64
	Err error
}

func (e *WriteError) Error() string {
	return fmt.Sprintf("writing the output at byte %d: %v", e.Pos, e.Err)
}
func (e *WriteError) Unwrap() error { return e.Err }

// openSource opens a source file the way qemu's file driver would accept
// it: a regular file, named without a final symlink (the chain hands over
// resolved paths), and never blocking on a FIFO swapped in since the plan.
func openSource(path string) (*os.File, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s is no longer a regular file", path)
	}
	return f, nil
}

// copyTo is Copy that calls mark, if set, each time the output is final
// below an offset.
func copyTo(ctx context.Context, dst string, size int64, segs []Segment, progress func(done, total int64), mark func(end int64)) (Stats, error) {
	var total int64
	for _, s := range segs {
		total += s.Length
	}
	if total != size {
		return Stats{}, fmt.Errorf("rawcopy: the segments hold %d bytes for a %d-byte disk", total, size)
	}
	var files []*os.File
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	var exts []extent
	var data, at int64
	for _, s := range segs {
		f, err := openSource(s.Path)
		if err != nil {
			return Stats{}, err
		}
		files = append(files, f)
		ranges, err := DataRanges(f, s.Offset, s.Length)
		if err != nil {
			return Stats{}, &ReadError{Path: s.Path, Offset: s.Offset, Pos: at, Err: err}
		}
		for _, r := range ranges {
			exts = append(exts, extent{src: f, off: r[0], len: r[1], dst: at + r[0] - s.Offset})
			data += r[1]
		}
		at += s.Length
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return Stats{}, err
	}
	defer out.Close()
	if err := out.Truncate(size); err != nil {
		return Stats{}, &WriteError{Pos: size, Err: err}
	}
	st := Stats{Kernel: true}
	var buf []byte
	for _, e := range exts {
		for done := int64(0); done < e.len; {
			if err := ctx.Err(); err != nil {
				return st, err
			}
			n := min(chunk, e.len-done)
			src, pos := e.off+done, e.dst+done
			ended := &ReadError{Path: e.src.Name(), Offset: src, Pos: pos, Err: errors.New("the file ended inside a range it reported as data")}
			var copied int64
			if st.Kernel {
				roff, woff := src, pos
				c, err := unix.CopyFileRange(int(e.src.Fd()), &roff, int(out.Fd()), &woff, int(n), 0)
				switch {
				case err == nil && c == 0:
					return st, ended
				case err == nil:
					copied = int64(c)
				case errors.Is(err, unix.EINTR):
					continue
				case fallback(err):
					st.Kernel = false
					continue
				default:
					return st, blame(e.src, src, pos, err)
				}
			} else {
				if buf == nil {
					buf = make([]byte, 4<<20)
				}
				b := buf[:min(int64(len(buf)), n)]
				c, err := e.src.ReadAt(b, src)
				if c > 0 {
					if _, werr := out.WriteAt(b[:c], pos); werr != nil {
						return st, &WriteError{Pos: pos, Err: werr}
					}
				}
				if err != nil && !(errors.Is(err, io.EOF) && c > 0) {
					if errors.Is(err, io.EOF) {
						return st, ended
					}
					return st, &ReadError{Path: e.src.Name(), Offset: src, Pos: pos, Err: err}
				}
				copied = int64(c)
			}
			done += copied
			st.Data += copied
			if mark != nil {
				mark(e.dst + done)
			}
			if progress != nil {
				progress(st.Data, data)
			}
		}
	}
	if err := out.Close(); err != nil {
		return st, &WriteError{Pos: size, Err: err}
	}
	return st, nil
}

// blame tells a failed copy_file_range's side: it reports one error for
// both files, so the source is read again where it failed.
func blame(src *os.File, off, pos int64, err error) error {
	probe := make([]byte, 4096)
	if _, rerr := src.ReadAt(probe, off); rerr != nil && !errors.Is(rerr, io.EOF) {
		return &ReadError{Path: src.Name(), Offset: off, Pos: pos, Err: rerr}
	}
	return &WriteError{Pos: pos, Err: err}
}

// fallback tells the errors for which copy_file_range cannot copy between
// these two files at all, so a buffered copy must.
func fallback(err error) bool {
	return errors.Is(err, unix.EXDEV) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EOPNOTSUPP) ||
		errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EPERM)
}

// DataRanges lists the [offset, length] ranges of f within [off, off+n)
// that hold data, by SEEK_DATA and SEEK_HOLE. A file system without them
// reports the whole file as data, which is still correct.
func DataRanges(f *os.File, off, n int64) ([][2]int64, error) {
	fd := int(f.Fd())
	end := off + n
	var out [][2]int64
	for pos := off; pos < end; {
		d, err := unix.Seek(fd, pos, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // no data past pos
		}
		if err != nil {
			return nil, err
		}
		if d >= end {
			break
		}
		h, err := unix.Seek(fd, d, unix.SEEK_HOLE)
		if err != nil {
			return nil, err
		}
		h = min(h, end)
		out = append(out, [2]int64{d, h - d})
		pos = h
	}
	return out, nil
}
