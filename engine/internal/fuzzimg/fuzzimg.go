// Package fuzzimg turns fuzz inputs into image files for the fuzz targets
// of the header parsers. A disk image is mostly zeros, so an input is a
// file size and a list of runs of bytes placed in an otherwise zero file:
// real images made by qemu-img stay small as seeds, and the fuzzer mutates
// offsets, lengths and contents alike. The file is never materialised; it
// is read through an io.ReaderAt that records any read outside the file,
// which the parsers must never attempt.
package fuzzimg

import (
	"encoding/binary"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// MaxSize bounds the file an input describes: large enough for tables of
// real size, small enough that reading all of it stays quick.
const MaxSize = 256 << 20

// Image is a decoded input.
type Image struct {
	Size int64
	// pages holds the non-zero 4 KiB pages, so a read costs what it covers
	// however many runs built the file.
	pages map[int64]*[pageSize]byte
	// Violation describes the first read outside [0, Size), if any.
	Violation string
}

const pageSize = 4096

// maxData bounds how much of an input is decoded.
const maxData = 4 << 20

// Decode reads an input: size in bytes (folded into MaxSize), then records
// of a little-endian uint32 offset, a uint16 length and that many bytes,
// each written over the file in order. A record cut short ends the list; a
// run past the end is clipped.
func Decode(size uint32, data []byte) *Image {
	im := &Image{Size: int64(size) % (MaxSize + 1), pages: map[int64]*[pageSize]byte{}}
	data = data[:min(len(data), maxData)]
	for len(data) >= 6 {
		off := int64(binary.LittleEndian.Uint32(data))
		n := int(binary.LittleEndian.Uint16(data[4:]))
		data = data[6:]
		n = min(n, len(data))
		b := data[:n]
		data = data[n:]
		if off >= im.Size {
			continue
		}
		if end := off + int64(len(b)); end > im.Size {
			b = b[:im.Size-off]
		}
		for len(b) > 0 {
			pg, in := off/pageSize, off%pageSize
			p := im.pages[pg]
			if p == nil {
				p = new([pageSize]byte)
				im.pages[pg] = p
			}
			k := copy(p[in:], b)
			b, off = b[k:], off+int64(k)
		}
	}
	return im
}

// Encode describes file as an input: its size and a run for each stretch
// of non-zero 512-byte sectors.
func Encode(file []byte) (uint32, []byte) {
	var out []byte
	const sector = 512
	for i := 0; i < len(file); {
		if allZero(file[i:min(i+sector, len(file))]) {
			i += sector
			continue
		}
		j := i
		for j < len(file) && j-i < 0xffff-sector && !allZero(file[j:min(j+sector, len(file))]) {
			j += sector
		}
		j = min(j, len(file))
		out = binary.LittleEndian.AppendUint32(out, uint32(i))
		out = binary.LittleEndian.AppendUint16(out, uint16(j-i))
		out = append(out, file[i:j]...)
		i = j
	}
	return uint32(len(file)), out
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// ReadAt serves the file: its pages, zeros elsewhere. A read outside the
// file is recorded and fails.
func (im *Image) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off > im.Size || int64(len(p)) > im.Size-off {
		if im.Violation == "" {
			im.Violation = fmt.Sprintf("read of %d bytes at offset %d in a %d-byte file", len(p), off, im.Size)
		}
		return 0, io.EOF
	}
	clear(p)
	end := off + int64(len(p))
	if int64(len(im.pages)) < (end-off)/pageSize {
		// Fewer pages than the read covers: visit the pages.
		for pg, b := range im.pages {
			lo, hi := max(off, pg*pageSize), min(end, (pg+1)*pageSize)
			if lo < hi {
				copy(p[lo-off:hi-off], b[lo-pg*pageSize:hi-pg*pageSize])
			}
		}
		return len(p), nil
	}
	for pg := off / pageSize; pg*pageSize < end; pg++ {
		if b := im.pages[pg]; b != nil {
			lo, hi := max(off, pg*pageSize), min(end, (pg+1)*pageSize)
			copy(p[lo-off:hi-off], b[lo-pg*pageSize:hi-pg*pageSize])
		}
	}
	return len(p), nil
}

// Corpus renders an input in the format of Go's fuzzing corpus files
// (testdata/fuzz/FuzzX/name) for targets taking (uint32, []byte).
func Corpus(size uint32, data []byte) []byte {
	return fmt.Appendf(nil, "go test fuzz v1\nuint32(%d)\n[]byte(%q)\n", size, data)
}

// ReadCorpus parses a corpus file written by Corpus.
func ReadCorpus(b []byte) (uint32, []byte, error) {
	lines := strings.SplitN(string(b), "\n", 4)
	if len(lines) < 3 || lines[0] != "go test fuzz v1" {
		return 0, nil, fmt.Errorf("fuzzimg: not a corpus file")
	}
	var size uint32
	if _, err := fmt.Sscanf(lines[1], "uint32(%d)", &size); err != nil {
		return 0, nil, fmt.Errorf("fuzzimg: %q: %w", lines[1], err)
	}
	q := strings.TrimSuffix(strings.TrimPrefix(lines[2], "[]byte("), ")")
	data, err := strconv.Unquote(q)
	if err != nil {
		return 0, nil, fmt.Errorf("fuzzimg: bad []byte line: %w", err)
	}
	return size, []byte(data), nil
}
