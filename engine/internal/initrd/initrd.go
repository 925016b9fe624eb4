// Package initrd edits a Linux initramfs image in place of rebuilding it.
// Under emulation a distribution's rebuild (update-initramfs, dracut) runs
// hundreds of shell hooks and takes minutes; adding a few driver modules
// and the module index to the image the guest already boots with takes
// seconds, and leaves every other byte of its archive as it was.
//
// An image is zero or more uncompressed cpio archives (early microcode),
// kept byte for byte, then the main archive, compressed. Only zstd and
// gzip main archives are edited; anything else is ErrUnsupported, and the
// caller rebuilds the image with the distribution's tool instead.
package initrd

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"

	"github.com/klauspost/compress/gzip"

	"github.com/klauspost/compress/zstd"
)

// ErrUnsupported says the image is laid out or compressed in a way this
// package does not edit.
var ErrUnsupported = errors.New("initramfs layout not supported for editing")

// Image is a parsed initramfs.
type Image struct {
	early   []byte // uncompressed archives before the main one
	comp    string // "zstd", "gzip" or "" (the main archive is not compressed)
	entries []entry
	dotted  bool // names are stored as "./usr/..." rather than "usr/..."
}

type entry struct {
	hdr  [13]uint32
	name string // as stored, without the NUL
	data []byte
}

const (
	fIno = iota
	fMode
	fUID
	fGID
	fNlink
	fMtime
	fSize
	fDevMajor
	fDevMinor
	fRdevMajor
	fRdevMinor
	fNameSize
	fCheck
)

const trailer = "TRAILER!!!"

var (
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
	gzipMagic = []byte{0x1f, 0x8b}
)

// Parse reads an image.
func Parse(b []byte) (*Image, error) {
	im := &Image{}
	off := 0
	lastStart, lastEnd := -1, -1
	for {
		for off+4 <= len(b) && b[off] == 0 && b[off+1] == 0 && b[off+2] == 0 && b[off+3] == 0 {
			off += 4
		}
		if off+6 > len(b) || !isCpio(b[off:]) {
			break
		}
		_, n, err := readArchive(b[off:])
		if err != nil {
			return nil, err
		}
		lastStart, lastEnd = off, off+n
		off += n
	}
	var main []byte
	switch rest := b[off:]; {
	case len(rest) == 0 || allZero(rest):
		if lastStart < 0 {
			return nil, fmt.Errorf("%w: no cpio archive", ErrUnsupported)
		}
		// Not compressed at all: the last archive is the main one.
		im.early, main = b[:lastStart], b[lastStart:lastEnd]
	case bytes.HasPrefix(rest, zstdMagic):
		im.early, im.comp = b[:off], "zstd"
		d, err := zstd.NewReader(bytes.NewReader(rest), zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, err
		}
		defer d.Close()
		if main, err = io.ReadAll(d); err != nil {
			return nil, fmt.Errorf("%w: zstd: %v", ErrUnsupported, err)
		}
	case bytes.HasPrefix(rest, gzipMagic):
		im.early, im.comp = b[:off], "gzip"
		r, err := gzip.NewReader(bytes.NewReader(rest))
		if err != nil {
			return nil, fmt.Errorf("%w: gzip: %v", ErrUnsupported, err)
		}
		if main, err = io.ReadAll(r); err != nil {
			return nil, fmt.Errorf("%w: gzip: %v", ErrUnsupported, err)
		}
	default:
		return nil, fmt.Errorf("%w: the main archive is compressed with something other than zstd or gzip (magic % x)", ErrUnsupported, rest[:min(len(rest), 6)])
	}
	entries, n, err := readArchive(main)
	if err != nil {
		return nil, err
	}
	// A second archive in the same stream would be read by the kernel
	// after ours and listed by no tool: leave such images to a rebuild.
	if !allZero(main[n:]) {
		return nil, fmt.Errorf("%w: more than one archive in the compressed stream", ErrUnsupported)
	}
	im.entries = entries
	for _, e := range entries {
		if strings.HasPrefix(e.name, "./") {
			im.dotted = true
			break
		}
	}
	return im, nil
}

func isCpio(b []byte) bool {
	return len(b) >= 6 && (string(b[:6]) == "070701" || string(b[:6]) == "070702")
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func pad4(n int) int { return (n + 3) &^ 3 }

// readArchive reads newc entries up to and including the trailer, and
// returns them (without the trailer) and the bytes the archive took.
func readArchive(b []byte) ([]entry, int, error) {
	var out []entry
	off := 0
	for {
		if off+110 > len(b) || !isCpio(b[off:]) {
			return nil, 0, fmt.Errorf("%w: a cpio header is damaged or missing at offset %d", ErrUnsupported, off)
		}
		var e entry
		for i := range e.hdr {
			v, err := strconv.ParseUint(string(b[off+6+8*i:off+14+8*i]), 16, 32)
			if err != nil {
				return nil, 0, fmt.Errorf("%w: cpio header at offset %d: %v", ErrUnsupported, off, err)
			}
			e.hdr[i] = uint32(v)
		}
		ns, size := int(e.hdr[fNameSize]), int(e.hdr[fSize])
		nameEnd := off + 110 + ns
		dataStart := pad4(nameEnd)
		dataEnd := dataStart + size
		if ns < 1 || dataEnd > len(b) {
			return nil, 0, fmt.Errorf("%w: a cpio entry runs past the archive at offset %d", ErrUnsupported, off)
		}
		e.name = string(b[off+110 : nameEnd-1])
		off = pad4(dataEnd)
		if e.name == trailer {
			return out, min(off, len(b)), nil
		}
		e.data = b[dataStart:dataEnd]
		out = append(out, e)
	}
}

func clean(name string) string { return strings.TrimPrefix(strings.TrimPrefix(name, "./"), "/") }

// Names lists the main archive's paths, without a leading "./".
func (im *Image) Names() []string {
	out := make([]string, 0, len(im.entries))
	for _, e := range im.entries {
		out = append(out, clean(e.name))
	}
	return out
}

// File returns a regular file's contents from the main archive.
func (im *Image) File(name string) ([]byte, bool) {
	for _, e := range im.entries {
		if clean(e.name) == clean(name) && e.hdr[fMode]&0o170000 == 0o100000 {
			return e.data, true
		}
	}
	return nil, false
}

// Compression is the main archive's: "zstd", "gzip" or "".
func (im *Image) Compression() string { return im.comp }

// Put adds a regular file to the main archive, or replaces one with the
// same path, with mode perm, owned by root, stamped mtime. Directories it
// lies in that the archive lacks are added too.
func (im *Image) Put(name string, data []byte, perm uint32, mtime uint32) error {
	name = clean(name)
	if name == "" || name == "." || strings.Contains("/"+name+"/", "/../") {
		return fmt.Errorf("initrd: bad path %q", name)
	}
	for i, e := range im.entries {
		if clean(e.name) != name {
			continue
		}
		if e.hdr[fMode]&0o170000 != 0o100000 || e.hdr[fNlink] > 1 {
			return fmt.Errorf("%w: %s is in the image but not a plain file", ErrUnsupported, name)
		}
		im.entries[i].data = data
		im.entries[i].hdr[fSize] = uint32(len(data))
		im.entries[i].hdr[fMtime] = mtime
		return nil
	}
	have := map[string]bool{}
	var ino uint32
	for _, e := range im.entries {
		have[clean(e.name)] = true
		ino = max(ino, e.hdr[fIno])
	}
	var dirs []string
	for d := path.Dir(name); d != "." && !have[d]; d = path.Dir(d) {
		dirs = append([]string{d}, dirs...)
	}
	add := func(n string, mode uint32, nlink uint32, data []byte) {
		ino++
		if im.dotted {
			n = "./" + n
		}
		var h [13]uint32
		h[fIno], h[fMode], h[fNlink], h[fMtime], h[fSize] = ino, mode, nlink, mtime, uint32(len(data))
		im.entries = append(im.entries, entry{hdr: h, name: n, data: data})
	}
	for _, d := range dirs {
		add(d, 0o040755, 2, nil)
	}
	add(name, 0o100000|perm&0o7777, 1, data)
	return nil
}

// Bytes writes the image: the early archives as they were, then the main
// archive compressed as it was.
func (im *Image) Bytes() ([]byte, error) {
	var main bytes.Buffer
	for _, e := range im.entries {
		writeEntry(&main, e)
	}
	writeEntry(&main, entry{hdr: [13]uint32{fNlink: 1}, name: trailer})
	// cpio pads its archives to 512 bytes; so do we.
	main.Write(make([]byte, (512-main.Len()%512)%512))

	out := bytes.NewBuffer(append([]byte(nil), im.early...))
	if im.comp == "" {
		out.Write(main.Bytes())
		return out.Bytes(), nil
	}
	var w io.WriteCloser
	var err error
	if im.comp == "zstd" {
		// The kernel's decompressor needs the whole window in memory at
		// boot: keep it small, as the zstd command's levels do.
		w, err = zstd.NewWriter(out, zstd.WithEncoderLevel(zstd.SpeedBestCompression),
			zstd.WithWindowSize(1<<21), zstd.WithEncoderConcurrency(1))
	} else {
		w, err = gzip.NewWriterLevel(out, gzip.DefaultCompression)
	}
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(main.Bytes()); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

func writeEntry(w *bytes.Buffer, e entry) {
	e.hdr[fNameSize] = uint32(len(e.name) + 1)
	e.hdr[fSize] = uint32(len(e.data))
	e.hdr[fCheck] = 0 // a 070702 archive's checksum means nothing under 070701
	w.WriteString("070701")
	for _, v := range e.hdr {
		fmt.Fprintf(w, "%08X", v)
	}
	w.WriteString(e.name)
	w.WriteByte(0)
	w.Write(make([]byte, pad4(w.Len())-w.Len()))
	w.Write(e.data)
	w.Write(make([]byte, pad4(w.Len())-w.Len()))
}
