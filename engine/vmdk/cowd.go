package vmdk

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math/bits"

	"github.com/vmconv/terraform-provider-vmconv/engine/internal/span"
)

// COWDHeader is the header of an ESX vmfsSparse ("-delta.vmdk") extent.
type COWDHeader struct {
	Version    uint32
	Flags      uint32
	Sectors    uint32
	GrainSize  uint32 // sectors
	GDOffset   uint32 // sectors
	GDEntries  uint32
	FreeSector uint32
	// Unchecked is set by CheckTables when the tables exceeded what a check
	// reads (maxTableBytes) and the rest was not checked.
	Unchecked bool
}

// cowdGTEntries is fixed for COWD files.
const cowdGTEntries = 4096

// cowdHeaderSectors is the size of ESX's COWD header (the fields qemu reads
// and the disk's name, description and generation).
const cowdHeaderSectors = 4

// ReadCOWDHeader reads and validates a vmfsSparse header.
func ReadCOWDHeader(r io.ReaderAt, size int64) (*COWDHeader, error) {
	if size < sector {
		return nil, truncated(sector, size, "the vmfsSparse header")
	}
	b := make([]byte, 44)
	if _, err := r.ReadAt(b, 0); err != nil {
		return nil, readErr(err, "the vmfsSparse header", 0)
	}
	if !bytes.Equal(b[:4], MagicCOWD) {
		return nil, corruptAt("vmfsSparse header", 0, "not a vmfsSparse extent: bad magic %q", b[:4])
	}
	le := binary.LittleEndian
	h := &COWDHeader{
		Version: le.Uint32(b[4:]), Flags: le.Uint32(b[8:]), Sectors: le.Uint32(b[12:]),
		GrainSize: le.Uint32(b[16:]), GDOffset: le.Uint32(b[20:]), GDEntries: le.Uint32(b[24:]),
		FreeSector: le.Uint32(b[28:]),
	}
	if h.Version != 1 {
		return nil, corruptAt("vmfsSparse header", 4, "unsupported vmfsSparse version %d", h.Version)
	}
	if h.Sectors == 0 {
		return nil, corruptAt("vmfsSparse header", 12, "the vmfsSparse header declares 0 sectors")
	}
	if h.GrainSize == 0 || h.GrainSize > 0x200000 || bits.OnesCount32(h.GrainSize) != 1 {
		return nil, corruptAt("vmfsSparse header", 16, "grain size %d sectors is not a power of two", h.GrainSize)
	}
	per := uint64(cowdGTEntries) * uint64(h.GrainSize)
	if want := (uint64(h.Sectors) + per - 1) / per; uint64(h.GDEntries) < want {
		return nil, corruptAt("vmfsSparse header", 24, "grain directory has %d entries, %d sectors need %d", h.GDEntries, h.Sectors, want)
	}
	if h.GDEntries > maxGDEntries {
		return nil, corruptAt("vmfsSparse header", 24, "grain directory of %d entries is beyond any VMDK", h.GDEntries)
	}
	if h.GDOffset == 0 {
		return nil, corruptAt("vmfsSparse header", 20, "the grain directory is at sector 0, inside the header")
	}
	return h, nil
}

// CheckTables verifies every grain table and grain lies inside the file,
// outside the header and tables, and apart from every other grain.
func (h *COWDHeader) CheckTables(r io.ReaderAt, size int64) error {
	gdOff := int64(h.GDOffset) * sector
	n := int64(h.GDEntries)
	grainBytes := int64(h.GrainSize) * sector
	const gtBytes = cowdGTEntries * 4
	// Grain tables are allocated among the grains as the delta grows, so
	// only the header comes before the first grain.
	l := newLayout(size, grainBytes, 0, false)
	hdr := min(int64(h.GDOffset), cowdHeaderSectors) * sector
	l.start = hdr
	if err := l.meta(region{"the vmfsSparse header", -1, 0, hdr}); err != nil {
		return err
	}
	if err := l.meta(region{"the grain directory", -1, gdOff, n * 4}); err != nil {
		return err
	}
	err := span.Scan(r, gdOff, n, 4, func(i int64, e []byte) error {
		if s := binary.LittleEndian.Uint32(e); s != 0 {
			return l.meta(region{"grain table", i, int64(s) * sector, gtBytes})
		}
		return nil
	})
	if err != nil {
		return tableErr(err, "the grain directory")
	}
	if err := l.seal(); err != nil {
		return err
	}
	gt := make([]byte, gtBytes)
	err = span.Scan(r, gdOff, n, 4, func(i int64, e []byte) error {
		off := int64(binary.LittleEndian.Uint32(e)) * sector
		if off == 0 || !l.readTable(gtBytes) {
			return nil
		}
		if _, err := r.ReadAt(gt, off); err != nil {
			return readErr(err, fmt.Sprintf("grain table %d", i), off)
		}
		for j := int64(0); j < cowdGTEntries; j++ {
			g := binary.LittleEndian.Uint32(gt[j*4:])
			if g == 0 {
				continue
			}
			// A grain's guest offset, for messages, is its table slot.
			if err := l.grain(fmtGrain(i, j), off+j*4, int64(g)*sector); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return tableErr(err, "the grain directory")
	}
	h.Unchecked = l.unchecked()
	return l.finish()
}
