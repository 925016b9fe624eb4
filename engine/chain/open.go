package chain

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// A name written inside a disk is resolved the way the kernel resolves it,
// never by editing the text: filepath.Clean turns "link/../x" into "x",
// while the kernel follows link first and then climbs out of wherever it
// points. So the file is opened (O_PATH: no read, no device side effects,
// no blocking on a FIFO), and its canonical path is read back from
// /proc/self/fd. Only that canonical path is confined to the source folder
// and handed to qemu.

// located is a file found by its name, without reading it yet.
type located struct {
	// Canonical is the absolute path with every symlink resolved, as the
	// kernel opened it.
	Canonical string
	Info      fs.FileInfo
}

// locate opens name with O_PATH and reports its canonical path and type.
// Nothing is read and nothing blocks, whatever the file is.
func locate(name string) (*located, error) {
	fd, err := unix.Open(name, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	defer unix.Close(fd)
	canon, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	if err != nil {
		return nil, fmt.Errorf("cannot read the canonical path of %s: %w", name, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, &os.PathError{Op: "fstat", Path: name, Err: err}
	}
	fi, err := os.Lstat(canon)
	if err != nil {
		return nil, err
	}
	if !sameInode(fi, st) {
		return nil, fmt.Errorf("%s changed while it was being opened", name)
	}
	return &located{Canonical: canon, Info: fi}, nil
}

func sameInode(fi fs.FileInfo, st unix.Stat_t) bool {
	id, ok := idOf(fi)
	return ok && id.dev == uint64(st.Dev) && id.ino == st.Ino
}

// kind names a file type for a diagnostic.
func kind(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	case m.IsDir():
		return "a folder"
	}
	return "not a regular file"
}

// openRegular opens a canonical path for reading, refusing anything that is
// not a regular file. O_NONBLOCK and O_NOFOLLOW make a file swapped for a
// FIFO or a symlink after locate fail here instead of hanging or escaping.
func openRegular(canon string) (*os.File, fs.FileInfo, error) {
	f, err := os.OpenFile(canon, os.O_RDONLY|unix.O_NONBLOCK|unix.O_NOFOLLOW|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fi, errNotRegular
	}
	return f, fi, nil
}

var errNotRegular = errors.New("not a regular file")
