package kvm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// StatPerm reads a path's owner, mode and POSIX access ACL, following
// symbolic links, for Reach.
func StatPerm(p string) (Perm, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		return Perm{}, &fs.PathError{Op: "stat", Path: p, Err: err}
	}
	perm := Perm{Mode: fs.FileMode(st.Mode & 0o777), UID: int(st.Uid), GID: int(st.Gid)}
	if st.Mode&syscall.S_IFMT == syscall.S_IFDIR {
		perm.Mode |= fs.ModeDir
	}
	buf := make([]byte, 4+8*64)
	n, err := syscall.Getxattr(p, "system.posix_acl_access", buf)
	switch {
	case err == nil && n > 0:
		if perm.ACL, err = ParseACL(buf[:n]); err != nil {
			return Perm{}, fmt.Errorf("%s: %w", p, err)
		}
	case errors.Is(err, syscall.ERANGE):
		// More than 64 entries: judge by the mode bits, whose group
		// class is the ACL's mask.
	}
	return perm, nil
}

// maxChain bounds a backing chain walk: real chains are a few layers.
const maxChain = 64

// BackingChain lists the backing files below a qcow2 image, each resolved
// as QEMU resolves it (relative to the folder of the image naming it).
// It reads the names from the images' headers itself rather than asking
// qemu-img, which would open them; it stops at what it cannot follow (not
// a regular file, not qcow2, a json: name) and at a loop.
func BackingChain(image string) []string {
	var chain []string
	seen := map[string]bool{image: true}
	for cur := image; len(chain) < maxChain; {
		name := qcow2Backing(cur)
		if name == "" || strings.HasPrefix(name, "json:") {
			break
		}
		if !filepath.IsAbs(name) {
			name = filepath.Join(filepath.Dir(cur), name)
		}
		if seen[name] {
			break
		}
		seen[name] = true
		chain = append(chain, name)
		cur = name
	}
	return chain
}

// qcow2Backing reads the backing file name of a qcow2 image, "" when it
// has none or is not a regular qcow2 file. The header's name is at most
// 1023 bytes (the qcow2 specification).
func qcow2Backing(p string) string {
	fi, err := os.Stat(p)
	if err != nil || !fi.Mode().IsRegular() {
		return ""
	}
	f, err := os.Open(p)
	if err != nil {
		return ""
	}
	defer f.Close()
	var h [20]byte
	if _, err := io.ReadFull(f, h[:]); err != nil || !bytes.Equal(h[:4], []byte("QFI\xfb")) {
		return ""
	}
	off, size := binary.BigEndian.Uint64(h[8:]), binary.BigEndian.Uint32(h[16:])
	if off == 0 || size == 0 || size > 1023 || off > uint64(fi.Size()) {
		return ""
	}
	name := make([]byte, size)
	if _, err := f.ReadAt(name, int64(off)); err != nil {
		return ""
	}
	return string(name)
}
