// Package iso9660 reads an ISO 9660 image (a CD or DVD image such as the
// virtio-win ISO) as an fs.FS, without mounting it: no root, no loop device,
// no appliance. It reads the names Joliet or Rock Ridge record when the image
// has them, and the plain ISO 9660 names otherwise.
//
// The whole directory tree is read when the image is opened, so that a
// damaged or hostile image (an extent past the end, a directory that
// contains itself) fails there, with the reason, rather than in the middle of
// a walk.
package iso9660

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"time"
	"unicode/utf16"
)

const (
	sector = 2048
	// The first volume descriptor is in sector 16; the system area before
	// it is free for boot code.
	firstDescriptor = 16
	// Limits against hostile images: a real virtio-win ISO holds a few
	// thousand entries, 6 levels deep.
	maxEntries = 1 << 20
	maxDepth   = 64
)

// ErrNotISO is returned for a file that has no ISO 9660 volume descriptor.
var ErrNotISO = errors.New("not an ISO 9660 image: no CD001 volume descriptor at sector 16")

// Is reports whether the file at p looks like an ISO 9660 image.
func Is(p string) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	b := make([]byte, 6)
	if _, err := f.ReadAt(b, firstDescriptor*sector); err != nil {
		return false
	}
	return string(b[1:6]) == "CD001"
}

// Image is an opened ISO image. It is an fs.FS; close it when done.
type Image struct {
	f     io.ReaderAt
	c     io.Closer
	size  int64
	root  *node
	Names string // "rock-ridge", "joliet" or "iso9660": where the names came from
}

type node struct {
	name     string
	dir      bool
	extent   int64 // byte offset
	size     int64
	mtime    time.Time
	children []*node // sorted by name
}

// Open opens the image at p and reads its directory tree.
func Open(p string) (*Image, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	im, err := Read(f, fi.Size())
	if err != nil {
		f.Close()
		return nil, err
	}
	im.c = f
	return im, nil
}

// Read reads an image of the given size from r.
func Read(r io.ReaderAt, size int64) (*Image, error) {
	im := &Image{f: r, size: size}
	var primary, joliet []byte
descriptors:
	for i := int64(firstDescriptor); ; i++ {
		d := make([]byte, sector)
		if _, err := r.ReadAt(d, i*sector); err != nil {
			if i == firstDescriptor {
				return nil, ErrNotISO
			}
			return nil, fmt.Errorf("the image is truncated: volume descriptor %d cannot be read: %w", i, err)
		}
		if string(d[1:6]) != "CD001" {
			if i == firstDescriptor {
				return nil, ErrNotISO
			}
			return nil, fmt.Errorf("volume descriptor %d is damaged (no CD001)", i)
		}
		switch d[0] {
		case 1:
			if primary == nil {
				primary = d
			}
		case 2:
			// Joliet is the supplementary descriptor whose escape sequence
			// names UCS-2 level 1, 2 or 3.
			esc := d[88:120]
			if joliet == nil && (bytes.Contains(esc, []byte("%/@")) || bytes.Contains(esc, []byte("%/C")) || bytes.Contains(esc, []byte("%/E"))) {
				joliet = d
			}
		case 255:
			break descriptors
		}
		if i > firstDescriptor+64 {
			return nil, errors.New("no volume descriptor set terminator in the first 64 descriptors")
		}
	}
	if primary == nil {
		return nil, errors.New("the image has no primary volume descriptor")
	}
	if bs := binary.LittleEndian.Uint16(primary[128:]); bs != sector {
		return nil, fmt.Errorf("logical block size %d is not supported (only %d)", bs, sector)
	}
	w := &walker{im: im, seen: map[int64]bool{}}
	// Rock Ridge lives in the primary tree; its root's "." record starts
	// with a SUSP "SP" entry.
	rootRec, err := record(primary[156 : 156+34])
	if err != nil {
		return nil, fmt.Errorf("the root directory record is damaged: %w", err)
	}
	if skip, ok := w.susp(rootRec); ok {
		w.rr, w.skip, im.Names = true, skip, "rock-ridge"
	} else if joliet != nil {
		if rootRec, err = record(joliet[156 : 156+34]); err != nil {
			return nil, fmt.Errorf("the Joliet root directory record is damaged: %w", err)
		}
		w.joliet, im.Names = true, "joliet"
	} else {
		im.Names = "iso9660"
	}
	im.root = &node{name: ".", dir: true, extent: rootRec.extent, size: rootRec.size, mtime: rootRec.mtime}
	if err := w.walk(im.root, 0); err != nil {
		return nil, err
	}
	return im, nil
}

// Close closes the image file.
func (im *Image) Close() error {
	if im.c != nil {
		return im.c.Close()
	}
	return nil
}

type rec struct {
	extent int64
	size   int64
	flags  byte
	id     []byte
	su     []byte // system use area
	mtime  time.Time
}

func record(b []byte) (rec, error) {
	if len(b) < 34 || int(b[0]) > len(b) || b[0] < 34 {
		return rec{}, errors.New("short directory record")
	}
	n := int(b[0])
	idLen := int(b[32])
	if 33+idLen > n {
		return rec{}, errors.New("directory record name runs past the record")
	}
	r := rec{
		extent: int64(binary.LittleEndian.Uint32(b[2:])) * sector,
		size:   int64(binary.LittleEndian.Uint32(b[10:])),
		flags:  b[25],
		id:     b[33 : 33+idLen],
		mtime:  recTime(b[18:25]),
	}
	su := 33 + idLen
	if idLen%2 == 0 {
		su++ // padding byte
	}
	if su < n {
		r.su = b[su:n]
	}
	return r, nil
}

func recTime(b []byte) time.Time {
	if b[0] == 0 && b[1] == 0 {
		return time.Time{}
	}
	loc := time.FixedZone("", int(int8(b[6]))*15*60)
	return time.Date(1900+int(b[0]), time.Month(b[1]), int(b[2]), int(b[3]), int(b[4]), int(b[5]), 0, loc)
}

type walker struct {
	im      *Image
	joliet  bool
	rr      bool
	skip    int
	seen    map[int64]bool
	entries int
}

// susp reports whether the root's "." record carries the SUSP "SP" entry
// that announces Rock Ridge, and the bytes to skip in every system use area.
func (w *walker) susp(root rec) (int, bool) {
	b, err := w.read(root.extent, min(root.size, sector))
	if err != nil {
		return 0, false
	}
	dot, err := record(b)
	if err != nil || len(dot.su) < 7 {
		return 0, false
	}
	su := dot.su
	if string(su[0:2]) == "SP" && su[4] == 0xBE && su[5] == 0xEF {
		return int(su[6]), true
	}
	return 0, false
}

func (w *walker) read(off, n int64) ([]byte, error) {
	if off < 0 || n < 0 || off+n > w.im.size {
		return nil, fmt.Errorf("an extent at byte %d (%d bytes) lies past the end of the %d-byte image: the image is truncated or damaged", off, n, w.im.size)
	}
	b := make([]byte, n)
	if _, err := w.im.f.ReadAt(b, off); err != nil {
		return nil, err
	}
	return b, nil
}

func (w *walker) walk(d *node, depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("directories nest more than %d deep: the image is damaged", maxDepth)
	}
	if w.seen[d.extent] {
		return fmt.Errorf("directory %q is reached twice (a directory loop): the image is damaged", d.name)
	}
	w.seen[d.extent] = true
	b, err := w.read(d.extent, d.size)
	if err != nil {
		return err
	}
	names := map[string]bool{}
	for off := 0; off < len(b); {
		n := int(b[off])
		if n == 0 {
			// Records do not cross sectors: the rest of this one is padding.
			off = (off/sector + 1) * sector
			continue
		}
		r, err := record(b[off:min(off+n, len(b))])
		if err != nil {
			return fmt.Errorf("directory %q has a damaged record at byte %d: %w", d.name, off, err)
		}
		off += n
		if len(r.id) == 1 && (r.id[0] == 0 || r.id[0] == 1) {
			continue // "." and ".."
		}
		if r.flags&0x80 != 0 {
			return fmt.Errorf("%q spans several extents (a file over 4 GiB), which is not supported", path.Join(d.name, string(r.id)))
		}
		name, err := w.name(r)
		if err != nil {
			return err
		}
		if name == "" || name == "." || name == ".." || strings.Contains(name, "/") {
			return fmt.Errorf("directory %q holds an entry named %q, which is not a valid file name", d.name, name)
		}
		if names[name] {
			continue // the same name twice: keep the first, as the kernel does
		}
		names[name] = true
		if w.entries++; w.entries > maxEntries {
			return fmt.Errorf("the image holds more than %d entries", maxEntries)
		}
		c := &node{name: name, dir: r.flags&0x02 != 0, extent: r.extent, size: r.size, mtime: r.mtime}
		if !c.dir {
			if c.extent+c.size > w.im.size {
				return fmt.Errorf("%q lies past the end of the %d-byte image: the image is truncated", path.Join(d.name, name), w.im.size)
			}
		}
		d.children = append(d.children, c)
	}
	sort.Slice(d.children, func(i, j int) bool { return d.children[i].name < d.children[j].name })
	for _, c := range d.children {
		if c.dir {
			if err := w.walk(c, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

// name decodes a record's name: Rock Ridge's NM entries, Joliet's UCS-2, or
// the plain name without its ";1" version.
func (w *walker) name(r rec) (string, error) {
	if w.rr {
		if nm, ok, err := w.rrName(r.su); err != nil {
			return "", err
		} else if ok {
			return nm, nil
		}
	}
	id := r.id
	var s string
	if w.joliet {
		u := make([]uint16, len(id)/2)
		for i := range u {
			u[i] = binary.BigEndian.Uint16(id[2*i:])
		}
		s = string(utf16.Decode(u))
	} else {
		s = string(id)
	}
	if i := strings.LastIndexByte(s, ';'); i >= 0 {
		s = s[:i]
	}
	if r.flags&0x02 == 0 {
		s = strings.TrimSuffix(s, ".") // "README." is "README"
	}
	return s, nil
}

// rrName collects the NM entries of a system use area, following CE
// continuation areas.
func (w *walker) rrName(su []byte) (string, bool, error) {
	if len(su) < w.skip {
		return "", false, nil
	}
	su = su[w.skip:]
	var name []byte
	found := false
	for hops := 0; ; hops++ {
		var next []byte
		for len(su) >= 4 {
			l := int(su[2])
			if l < 4 || l > len(su) {
				break
			}
			e := su[:l]
			switch string(e[0:2]) {
			case "NM":
				if l >= 5 {
					found = true
					if e[4]&0x06 == 0 { // not "." or ".."
						name = append(name, e[5:]...)
					}
				}
			case "CE":
				if l >= 28 {
					blk := int64(binary.LittleEndian.Uint32(e[4:]))
					off := int64(binary.LittleEndian.Uint32(e[12:]))
					n := int64(binary.LittleEndian.Uint32(e[20:]))
					b, err := w.read(blk*sector+off, n)
					if err != nil {
						return "", false, err
					}
					next = b
				}
			case "ST":
				su = nil
				continue
			}
			su = su[l:]
		}
		if next == nil {
			break
		}
		if hops > 16 {
			return "", false, errors.New("rock ridge continuation areas loop: the image is damaged")
		}
		su = next
	}
	return string(name), found && len(name) > 0, nil
}

// Open implements fs.FS. Names match exactly or, failing that, without
// regard to case: images written for Windows do not keep case reliably
// (plain ISO 9660 names are upper case).
func (im *Image) Open(name string) (fs.File, error) {
	n, err := im.lookup(name)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	if n.dir {
		return &dirFile{n: n}, nil
	}
	return &file{n: n, SectionReader: io.NewSectionReader(im.f, n.extent, n.size)}, nil
}

func (im *Image) lookup(name string) (*node, error) {
	if !fs.ValidPath(name) {
		return nil, fs.ErrInvalid
	}
	n := im.root
	if name == "." {
		return n, nil
	}
	for _, part := range strings.Split(name, "/") {
		if !n.dir {
			return nil, fs.ErrNotExist
		}
		var found *node
		for _, c := range n.children {
			if c.name == part {
				found = c
				break
			}
			if found == nil && strings.EqualFold(c.name, part) {
				found = c
			}
		}
		if found == nil {
			return nil, fs.ErrNotExist
		}
		n = found
	}
	return n, nil
}

type info struct{ n *node }

func (i info) Name() string { return i.n.name }
func (i info) Size() int64 {
	if i.n.dir {
		return 0
	}
	return i.n.size
}
func (i info) Mode() fs.FileMode {
	if i.n.dir {
		return fs.ModeDir | 0o555
	}
	return 0o444
}
func (i info) ModTime() time.Time         { return i.n.mtime }
func (i info) IsDir() bool                { return i.n.dir }
func (i info) Sys() any                   { return nil }
func (i info) Type() fs.FileMode          { return i.Mode().Type() }
func (i info) Info() (fs.FileInfo, error) { return i, nil }

type file struct {
	n *node
	*io.SectionReader
}

func (f *file) Stat() (fs.FileInfo, error) { return info{f.n}, nil }
func (f *file) Close() error               { return nil }

type dirFile struct {
	n   *node
	off int
}

func (d *dirFile) Stat() (fs.FileInfo, error) { return info{d.n}, nil }
func (d *dirFile) Close() error               { return nil }
func (d *dirFile) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.n.name, Err: errors.New("is a directory")}
}

func (d *dirFile) ReadDir(count int) ([]fs.DirEntry, error) {
	rest := d.n.children[d.off:]
	if count > 0 && len(rest) == 0 {
		return nil, io.EOF
	}
	if count > 0 && count < len(rest) {
		rest = rest[:count]
	}
	d.off += len(rest)
	out := make([]fs.DirEntry, len(rest))
	for i, c := range rest {
		out[i] = info{c}
	}
	return out, nil
}
