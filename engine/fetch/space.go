package fetch

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
)

// What FETCH may write is bounded by what is known about it (a
// Content-Length, the OVF's sizes, the tar header) and, always, by the
// room in the cache: the free space of its file system less a reserve.
// The reserve keeps a fetch that runs up to the bound from starving
// everything else on that file system (the output, the work folder, the
// system itself when the cache is under /var or a home folder).
const (
	reserveFraction = 20      // 5% of the file system
	reserveMax      = 1 << 30 // but never more than 1 GiB
)

// room is the free space in dir's file system and the part of it a fetch
// leaves alone.
type room struct {
	dir           string
	free, reserve int64
}

func roomIn(dir string) (room, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return room{}, err
	}
	size := int64(st.Blocks) * st.Bsize
	return room{dir: dir, free: int64(st.Bavail) * st.Bsize, reserve: min(reserveMax, size/reserveFraction)}, nil
}

// usable is how much a fetch may write.
func (r room) usable() int64 { return max(0, r.free-r.reserve) }

// tooBig is the fault for something that does not fit: label names what
// the user wrote (the URL, the OVA member), not the cache file.
func (r room) tooBig(label string, need int64, what string) *fault.Error {
	return fault.New(fault.NoSpace, label, "%s needs %s, but the cache folder %s has only %s free (and %s of that is kept in reserve)",
		what, human(need), r.dir, human(r.free), human(r.reserve)).
		WithHint("Free space in %s, or set the provider's cache_dir to a folder on a larger file system, then apply again.", r.dir).
		WithFact("Cache folder", r.dir).
		WithFact("Needed", fmt.Sprintf("%d bytes", need)).
		WithFact("Free", fmt.Sprintf("%d bytes", r.free))
}

// writeError remembers the first error of the writer it wraps, so that a
// copy can tell a full disk (the writer) from a dropped connection or a
// truncated archive (the reader).
type writeError struct {
	w   io.Writer
	err error
}

func (w *writeError) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	if err != nil && w.err == nil {
		w.err = err
	}
	return n, err
}

func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

func human(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// copyBounded appends body to part, which holds from bytes, and returns
// the part's new size. It never writes past the announced length, nor
// past the room in the cache: a body without a length that runs past that
// room is refused (an endless body would otherwise fill the file system),
// and so is a length that does not fit. A full disk is a NoSpace fault; the
// part is kept when a later apply can resume it (resumable: the length is
// known and recorded).
func copyBounded(part *os.File, body io.Reader, red string, from, length int64, resumable bool) (int64, error) {
	rm, err := roomIn(filepath.Dir(part.Name()))
	if err != nil {
		return 0, &permanentError{err: fault.Wrap(fault.OutputNotWritable, filepath.Dir(part.Name()), err, "cannot read the free space of the cache folder")}
	}
	limit := rm.usable()
	if length > 0 {
		need := length - from
		if need > limit {
			return 0, &permanentError{err: rm.tooBig(red, need, "the download"), discard: from == 0}
		}
		limit = need
	}
	w := &writeError{w: part}
	n, err := io.Copy(w, io.LimitReader(body, limit))
	if err == nil {
		if err = part.Sync(); err != nil {
			w.err = err
		}
	}
	switch {
	case w.err != nil && isNoSpace(w.err):
		return 0, diskFull(red, rm.dir, w.err, from+n, length, resumable)
	case w.err != nil:
		return 0, &permanentError{err: fault.Wrap(fault.OutputNotWritable, part.Name(), w.err, "cannot write the download")}
	case err != nil:
		return 0, fmt.Errorf("connection dropped after %d bytes: %w", n, err)
	}
	if length <= 0 && n == limit {
		// The room is used up: the body must end here.
		var one [1]byte
		if k, _ := io.ReadFull(body, one[:]); k > 0 {
			return 0, &permanentError{err: fault.New(fault.NoSpace, red,
				"the server announced no length (no Content-Length) and sent more than the %s the cache folder %s can take (its free space, less a reserve of %s)",
				human(limit), rm.dir, human(rm.reserve)).
				WithHint("If the file really is that large, free space in %s or set the provider's cache_dir to a folder on a larger file system, then apply again. If it is not, the server sends an endless or wrong body: check the server and source.url.href. The part downloaded was removed.", rm.dir).
				WithFact("Cache folder", rm.dir).
				WithFact("Limit", fmt.Sprintf("%d bytes", limit)), discard: true}
		}
	}
	return from + n, nil
}

// diskFull is the fault for a file system that filled up under a download
// (something else wrote to it: the download itself stays within the room).
// A resumable download is kept, for a later apply to resume; one without a
// known length cannot be resumed and is discarded.
func diskFull(red, dir string, err error, done, length int64, resumable bool) *permanentError {
	if resumable {
		return &permanentError{err: fault.Wrap(fault.NoSpace, red, err, "the cache folder %s filled up during the download, at byte %d of %d", dir, done, length).
			WithHint("Something else is writing to that file system. Free space in %s, or set the provider's cache_dir to a folder on a larger file system, then apply again: the download resumes where it stopped (or starts over if the server does not serve ranges).", dir).
			WithFact("Cache folder", dir)}
	}
	return &permanentError{err: fault.Wrap(fault.NoSpace, red, err, "the cache folder %s filled up during the download, at byte %d", dir, done).
		WithHint("Something else is writing to that file system. Free space in %s, or set the provider's cache_dir to a folder on a larger file system, then apply again. The part downloaded could not be recorded for a resume (the server gives no length, or the disk was already full) and was removed.", dir).
		WithFact("Cache folder", dir), discard: true}
}

// CheckRoom refuses, before anything is fetched, a source of need bytes
// that does not fit in the room of dir's file system (dir, or the nearest
// folder above it that exists: the cache's folders are made on demand).
// label names the source as the user wrote it.
func CheckRoom(dir, label string, need int64) error {
	for {
		if _, err := os.Stat(dir); err == nil || filepath.Dir(dir) == dir {
			break
		}
		dir = filepath.Dir(dir)
	}
	rm, err := roomIn(dir)
	if err != nil {
		return fault.Wrap(fault.OutputNotWritable, dir, err, "cannot read the free space of the cache folder")
	}
	if need > rm.usable() {
		return rm.tooBig(label, need, "the download")
	}
	return nil
}
