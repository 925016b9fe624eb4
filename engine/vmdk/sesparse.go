package vmdk

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/engine/internal/span"
)

// SESparseHeader is the constant header of an seSparse extent, the
// snapshot format of VMFS6 datastores.
type SESparseHeader struct {
	Capacity          uint64 // sectors
	GrainSize         uint64 // sectors (always 8)
	GrainTableSize    uint64 // sectors (always 64)
	VolatileOffset    uint64
	GrainDirOffset    uint64
	GrainDirSize      uint64 // sectors
	GrainTablesOffset uint64
	GrainTablesSize   uint64
	GrainsOffset      uint64
	GrainsSize        uint64
	// Unchecked is set by CheckTables when the tables exceeded what a check
	// reads (maxTableBytes) and the rest was not checked.
	Unchecked bool

	// regions are the header's areas, in bytes, checked to lie inside the
	// file (those qemu reads) and apart from each other.
	regions []region
}

// seSparse header fields, as 64-bit little-endian words of sector 0.
const (
	seVolatileOff = 10
	seGrainDirOff = 16
	seGrainsOff   = 24
	seFields      = 26
)

var seRegionNames = []string{"the seSparse volatile header", "the seSparse journal header", "the seSparse journal",
	"the seSparse grain directory", "the seSparse grain tables", "the seSparse free bitmap", "the seSparse backmap", "the seSparse grains"}

// ReadSESparseHeader reads and validates the const and volatile headers
// with the same strictness as qemu, which is the only other reader.
func ReadSESparseHeader(r io.ReaderAt, size int64) (*SESparseHeader, error) {
	if size < 2*sector {
		return nil, truncated(2*sector, size, "the seSparse headers")
	}
	b := make([]byte, sector)
	if _, err := r.ReadAt(b, 0); err != nil {
		return nil, readErr(err, "the seSparse header", 0)
	}
	le := binary.LittleEndian
	u := func(i int) uint64 { return le.Uint64(b[i*8:]) }
	if u(0) != 0xcafebabe {
		return nil, corruptAt("seSparse header", 0, "not an seSparse extent: bad magic %#x", u(0))
	}
	if u(1) != 0x0000000200000001 {
		return nil, corruptAt("seSparse header", 8, "unsupported seSparse version %#x", u(1))
	}
	h := &SESparseHeader{
		Capacity: u(2), GrainSize: u(3), GrainTableSize: u(4),
		VolatileOffset: u(seVolatileOff), GrainDirOffset: u(seGrainDirOff), GrainDirSize: u(seGrainDirOff + 1),
		GrainTablesOffset: u(seGrainDirOff + 2), GrainTablesSize: u(seGrainDirOff + 3),
		GrainsOffset: u(seGrainsOff), GrainsSize: u(seGrainsOff + 1),
	}
	if h.GrainSize != 8 || h.GrainTableSize != 64 {
		return nil, corruptAt("seSparse header", 24, "unsupported seSparse geometry: grain %d, table %d sectors", h.GrainSize, h.GrainTableSize)
	}
	if u(5) != 0 || u(6) != 0 || u(7) != 0 || u(8) != 0 || u(9) != 0 {
		return nil, corruptAt("seSparse header", 40, "seSparse header has unsupported flags or reserved bits set")
	}
	if len(bytes.Trim(b[seFields*8:], "\x00")) != 0 {
		return nil, corruptAt("seSparse header", seFields*8, "seSparse header padding is not zero")
	}
	if h.Capacity == 0 || h.Capacity > maxSectors {
		return nil, corruptAt("seSparse header", 16, "seSparse capacity %d sectors is out of range", h.Capacity)
	}
	// Every area is a sector offset and a sector count; all must be
	// representable, and the header's own sector comes first.
	h.regions = []region{{"the seSparse header", -1, 0, sector}}
	for i, name := range seRegionNames {
		at := int64(seVolatileOff+2*i) * 8
		off, err := sectors(u(seVolatileOff+2*i), name, at)
		if err != nil {
			return nil, err
		}
		n, err := sectors(u(seVolatileOff+2*i+1), name, at+8)
		if err != nil {
			return nil, err
		}
		if n > 0 {
			h.regions = append(h.regions, region{name, -1, off, n})
		}
	}
	voff := int64(h.VolatileOffset) * sector
	if err := inFile(voff, sector, size, "the seSparse volatile header"); err != nil {
		return nil, err
	}
	v := make([]byte, sector)
	if _, err := r.ReadAt(v, voff); err != nil {
		return nil, readErr(err, "the seSparse volatile header", voff)
	}
	if le.Uint64(v) != 0xcafecafe {
		return nil, corruptAt("seSparse volatile header", voff, "seSparse volatile header has a bad magic")
	}
	if le.Uint64(v[24:]) != 0 {
		return nil, fault.New(fault.UnsupportedFormat, "", "the seSparse journal needs replaying (the snapshot was not closed cleanly)").
			WithHint("Power the VM off cleanly or consolidate its snapshots on ESXi, then copy the disk again.")
	}
	return h, nil
}

// CheckTables verifies the header's areas do not overlap, every grain
// table lies in the grain-table area and every grain in the grain area,
// all inside the file, and that no two directory entries share a table
// and no two table entries a grain.
func (h *SESparseHeader) CheckTables(r io.ReaderAt, size int64) error {
	le := binary.LittleEndian
	l := newLayout(size, int64(h.GrainSize)*sector, 0, false)
	// The grain and table areas may be declared larger than the file has
	// grown, so only their overlaps are checked here; each table and grain
	// is checked against the file below.
	l.regions = append(l.regions, h.regions...)
	if err := l.seal(); err != nil {
		return err
	}
	gdOff := int64(h.GrainDirOffset) * sector
	entries := int64(h.GrainDirSize) * sector / 8
	if entries > maxGDEntries {
		return corruptAt("seSparse header", seGrainDirOff*8+8, "seSparse grain directory of %d entries is beyond any VMDK", entries)
	}
	if err := inFile(gdOff, entries*8, size, "the seSparse grain directory"); err != nil {
		return err
	}
	tableBytes := int64(h.GrainTableSize) * sector
	gtArea, gtAreaLen := int64(h.GrainTablesOffset)*sector, int64(h.GrainTablesSize)*sector
	grainsArea, grainsLen := int64(h.GrainsOffset)*sector, int64(h.GrainsSize)*sector
	grainBytes := int64(h.GrainSize) * sector
	tables := span.NewMap(tableBytes, gtArea, maxMapBytes)
	grains := span.NewMap(grainBytes, grainsArea, maxMapBytes)
	gt := make([]byte, tableBytes)
	err := span.Scan(r, gdOff, entries, 8, func(i int64, b []byte) error {
		e := le.Uint64(b)
		at := gdOff + i*8
		if e == 0 {
			return nil
		}
		if e&0xffffffff00000000 != 0x1000000000000000 {
			return corruptAt("seSparse grain directory", at, "seSparse grain directory entry %d is malformed (%#x)", i, e)
		}
		what := fmt.Sprintf("seSparse grain table %d", i)
		rel := int64(e&0xffffffff) * tableBytes
		if rel+tableBytes > gtAreaLen {
			return corruptAt("seSparse grain directory", at, "%s (index %d) lies past the grain-table area", what, e&0xffffffff)
		}
		off := gtArea + rel
		if err := inFile(off, tableBytes, size, what); err != nil {
			return err
		}
		if tables.Claim("", span.Data, off, tableBytes) != nil {
			return corruptAt("seSparse grain directory", at, "%s (index %d) is also used by another directory entry", what, e&0xffffffff)
		}
		if !l.readTable(tableBytes) {
			return nil
		}
		if _, err := r.ReadAt(gt, off); err != nil {
			return readErr(err, what, off)
		}
		for j := int64(0); j < tableBytes/8; j++ {
			g := le.Uint64(gt[j*8:])
			switch g & 0xf000000000000000 {
			case 0:
				if g != 0 {
					return corruptAt(what, off+j*8, "seSparse grain table %d entry %d is malformed", i, j)
				}
			case 0x1000000000000000, 0x2000000000000000: // unmapped, zero
			case 0x3000000000000000:
				idx := int64((g&0x0fff000000000000)>>48 | (g&0x0000ffffffffffff)<<12)
				rel, ok := span.Mul(idx, grainBytes)
				if !ok || rel+grainBytes > grainsLen {
					return corruptAt(what, off+j*8, "%s entry %d names grain %d, past the grain area", what, j, idx)
				}
				if err := inFile(grainsArea+rel, grainBytes, size, "an seSparse grain ("+what+")"); err != nil {
					return err
				}
				if grains.Claim("", span.Data, grainsArea+rel, grainBytes) != nil {
					return corruptAt(what, off+j*8, "%s entry %d names grain %d, which another entry already uses", what, j, idx)
				}
			default:
				return corruptAt(what, off+j*8, "seSparse grain table %d entry %d has an unknown type", i, j)
			}
		}
		return nil
	})
	if err != nil {
		return tableErr(err, "the seSparse grain directory")
	}
	h.Unchecked = l.unchecked() || tables.Full() || grains.Full()
	return nil
}
