package diskformat

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math/bits"
	"slices"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/engine/internal/span"
)

// vhdMaxEntries bounds the dynamic VHD block table: 4M entries of 512 KiB
// blocks cover the 2040 GiB VHD maximum.
const vhdMaxEntries = 1 << 22

// vhdChecksum is the ones' complement of the byte sum, skipping the field.
func vhdChecksum(b []byte, skipAt int) uint32 {
	var s uint32
	for i, c := range b {
		if i >= skipAt && i < skipAt+4 {
			continue
		}
		s += uint32(c)
	}
	return ^s
}

func inspectVHD(r io.ReaderAt, size int64) (*Info, error) {
	if size < 512 {
		return nil, truncated(512, size, "the VHD footer")
	}
	footerAt := size - 512
	footer, err := readFull(r, footerAt, 512)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(footer[:8], []byte("conectix")) {
		// Dynamic disks keep a copy at the start; if only that exists, the
		// end of the file is missing.
		head, err := readFull(r, 0, 512)
		if err == nil && bytes.Equal(head[:8], []byte("conectix")) {
			return nil, fault.New(fault.TruncatedImage, "", "the VHD has a header copy at its start but no footer at its end").
				WithHint("The file was cut short. Copy it again from the source.").WithFact("Structure", "VHD footer")
		}
		return nil, corruptAt("VHD footer", footerAt, "the VHD footer signature is missing")
	}
	be := binary.BigEndian
	if want, got := vhdChecksum(footer, 64), be.Uint32(footer[64:]); want != got {
		return nil, corruptAt("VHD footer", footerAt, "the VHD footer checksum is %08x, the footer's bytes give %08x", got, want)
	}
	vs, err := checkVirtualSize("VHD", be.Uint64(footer[48:]), footerAt+48)
	if err != nil {
		return nil, err
	}
	if vs%512 != 0 {
		return nil, corruptAt("VHD footer", footerAt+48, "the VHD footer declares a disk of %d bytes, which is not a whole number of 512-byte sectors", vs)
	}
	info := &Info{VirtualSize: vs}
	switch t := be.Uint32(footer[60:]); t {
	case 2: // fixed: the data, then the footer
		if vs > footerAt {
			return nil, truncated(vs+512, size, fmt.Sprintf("the fixed VHD's %d bytes of data and its footer", vs))
		}
		return info, nil
	case 3: // dynamic
	case 4:
		return nil, unsupported("Merge the differencing disk into its parent in Hyper-V (Edit Disk > Merge) or with `qemu-img`-independent tools, then convert the merged VHD.",
			"the VHD is a differencing disk (it has a parent), which vmconv does not read")
	default:
		return nil, corruptAt("VHD footer", footerAt+60, "unknown VHD disk type %d", t)
	}
	return info, checkDynamicVHD(r, size, footer, vs)
}

// vhdRegion is a metadata structure of a dynamic VHD.
type vhdRegion struct {
	what   string
	off, n int64
}

func checkDynamicVHD(r io.ReaderAt, size int64, footer []byte, vs int64) error {
	be := binary.BigEndian
	footerAt := size - 512
	dynOff, ok := span.Int(be.Uint64(footer[16:]))
	if !ok || dynOff < 512 {
		return corruptAt("VHD footer", footerAt+16, "the VHD dynamic header offset %#x is invalid", be.Uint64(footer[16:]))
	}
	if err := inFile(dynOff, 1024, footerAt, "the VHD dynamic header"); err != nil {
		return err
	}
	dyn, err := readFull(r, dynOff, 1024)
	if err != nil {
		return err
	}
	if !bytes.Equal(dyn[:8], []byte("cxsparse")) {
		return corruptAt("VHD dynamic header", dynOff, "the VHD dynamic header signature is missing")
	}
	batOff, ok := span.Int(be.Uint64(dyn[16:]))
	entries := int64(be.Uint32(dyn[28:]))
	block := int64(be.Uint32(dyn[32:]))
	if block < 512 || block > 256<<20 || bits.OnesCount64(uint64(block)) != 1 {
		return corruptAt("VHD dynamic header", dynOff+32, "VHD block size %d is not a power of two from 512 bytes to 256 MiB", block)
	}
	if entries > vhdMaxEntries {
		return corruptAt("VHD dynamic header", dynOff+28, "VHD block table of %d entries is beyond any VHD (at most %d)", entries, vhdMaxEntries)
	}
	if entries*block < vs {
		return corruptAt("VHD dynamic header", dynOff+28, "the VHD block table maps %d blocks of %d bytes, less than the %d-byte disk the footer declares", entries, block, vs)
	}
	batBytes := (entries*4 + 511) &^ 511
	if !ok {
		return corruptAt("VHD dynamic header", dynOff+16, "the VHD block allocation table offset %#x is invalid", be.Uint64(dyn[16:]))
	}
	if err := inFile(batOff, entries*4, footerAt, "the VHD block allocation table"); err != nil {
		return err
	}
	meta := []vhdRegion{{"the VHD footer copy", 0, 512}, {"the VHD dynamic header", dynOff, 1024}, {"the VHD block allocation table", batOff, batBytes}}
	for i, a := range meta {
		for _, b := range meta[i+1:] {
			if span.Overlap(a.off, a.n, b.off, b.n) {
				return corruptAt(b.what, b.off, "%s at offset %d overlaps %s at offset %d", b.what, b.off, a.what, a.off)
			}
		}
	}
	// A block is its sector bitmap, then its data.
	bitmap := ((block/512+7)/8 + 511) &^ 511
	blockBytes := bitmap + block
	var starts []uint64 // sector<<32 | index, for the overlap check
	err = scanTable(r, batOff, entries, 4, func(i int64, e []byte) error {
		s := be.Uint32(e)
		if s == 0xffffffff {
			return nil
		}
		off := int64(s) * 512
		what := fmt.Sprintf("VHD block %d", i)
		if end := off + blockBytes; end > footerAt {
			return truncated(end+512, size, what+" and the footer")
		}
		for _, m := range meta {
			if span.Overlap(off, blockBytes, m.off, m.n) {
				return corruptAt(what, batOff+i*4, "%s at offset %d overlaps %s at offset %d", what, off, m.what, m.off)
			}
		}
		// More blocks than the file holds must overlap: refuse before the
		// list grows past what the file can justify.
		if int64(len(starts)) >= footerAt/blockBytes {
			return corruptAt(what, batOff+i*4, "the VHD block table lists more allocated blocks than the %d-byte file can hold, so some overlap", size)
		}
		starts = append(starts, uint64(s)<<32|uint64(i))
		return nil
	})
	if err != nil {
		return err
	}
	slices.Sort(starts)
	for k := 1; k < len(starts); k++ {
		a, b := starts[k-1], starts[k]
		if int64(b>>32-a>>32)*512 < blockBytes {
			i, j := int64(b&0xffffffff), int64(a&0xffffffff)
			return corruptAt(fmt.Sprintf("VHD block %d", i), batOff+i*4,
				"VHD block %d at offset %d overlaps VHD block %d at offset %d", i, int64(b>>32)*512, j, int64(a>>32)*512)
		}
	}
	return nil
}
