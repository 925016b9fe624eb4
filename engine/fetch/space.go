package fetch

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/engine/internal/room"
)

// What FETCH may write is bounded by what is known about it (a
// Content-Length) and, always, by the room in the cache (engine/internal/room).

// copyBounded appends body to part, which holds from bytes, and returns
// the part's new size. It never writes past the announced length, nor
// past the room in the cache: a body without a length that runs past that
// room is refused (an endless body would otherwise fill the file system),
// and so is a length that does not fit. A full disk is a NoSpace fault; the
// part is kept when a later apply can resume it (resumable: the length is
// known and recorded).
func copyBounded(part *os.File, body io.Reader, red string, from, length int64, resumable bool) (int64, error) {
	rm, err := room.In(filepath.Dir(part.Name()))
	if err != nil {
		return 0, &permanentError{err: fault.Wrap(fault.OutputNotWritable, filepath.Dir(part.Name()), err, "cannot read the free space of the cache folder")}
	}
	limit := rm.Usable()
	if length > 0 {
		need := length - from
		if need > limit {
			return 0, &permanentError{err: rm.TooBig(red, need, "the download"), discard: from == 0}
		}
		limit = need
	}
	w := &room.Writer{W: part}
	n, err := io.Copy(w, io.LimitReader(body, limit))
	if err == nil {
		if err = part.Sync(); err != nil {
			w.Err = err
		}
	}
	switch {
	case w.Err != nil && room.IsNoSpace(w.Err):
		return 0, diskFull(red, rm.Dir, w.Err, from+n, length, resumable)
	case w.Err != nil:
		return 0, &permanentError{err: fault.Wrap(fault.OutputNotWritable, part.Name(), w.Err, "cannot write the download")}
	case err != nil:
		return 0, fmt.Errorf("connection dropped after %d bytes: %w", n, err)
	}
	if length <= 0 && n == limit {
		// The room is used up: the body must end here.
		var one [1]byte
		if k, _ := io.ReadFull(body, one[:]); k > 0 {
			return 0, &permanentError{err: fault.New(fault.NoSpace, red,
				"the server announced no length (no Content-Length) and sent more than the %s the cache folder %s can take (its free space, less a reserve of %s)",
				room.Human(limit), rm.Dir, room.Human(rm.Reserve)).
				WithHint("If the file really is that large, free space in %s or set the provider's cache_dir to a folder on a larger file system, then apply again. If it is not, the server sends an endless or wrong body: check the server and source.url.href. The part downloaded was removed.", rm.Dir).
				WithFact("Cache folder", rm.Dir).
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
	rm, err := room.Near(dir)
	if err != nil {
		return fault.Wrap(fault.OutputNotWritable, dir, err, "cannot read the free space of the cache folder")
	}
	if need > rm.Usable() {
		return rm.TooBig(label, need, "the download")
	}
	return nil
}
