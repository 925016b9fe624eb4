package diskformat

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"math/bits"

	"github.com/vmconv/terraform-provider-vmconv/engine/internal/guid"
	"github.com/vmconv/terraform-provider-vmconv/engine/internal/span"
)

var (
	vhdxRegionBAT      = guid.Must("2DC27766-F623-4200-9D64-115E9BFD4A08")
	vhdxRegionMetadata = guid.Must("8B7CA206-4790-4B9A-B8FE-575F050F886E")
	vhdxFileParams     = guid.Must("CAA16737-FA36-4D43-B3B6-33F0AA44E76B")
	vhdxVirtualSize    = guid.Must("2FA54224-CD1B-4876-B211-5DBED83BF4B8")
	vhdxLogicalSector  = guid.Must("8141BF1D-A96F-4709-BA47-F233A8FAAB5F")
	vhdxPhysicalSector = guid.Must("CDA348C7-445D-4471-9CC9-E9885251C556")
	vhdxPage83         = guid.Must("BECA12AB-B2E6-4523-93EF-C309E000C746")
	vhdxParentLocator  = guid.Must("A8D35F2D-B30B-454D-ABF7-D3D84834AB0C")

	castagnoli = crc32.MakeTable(crc32.Castagnoli)
)

const mib = 1 << 20

// vhdxChecksum is the CRC-32C of b with its checksum field (at 4) zeroed.
func vhdxChecksum(b []byte) uint32 {
	c := make([]byte, len(b))
	copy(c, b)
	binary.LittleEndian.PutUint32(c[4:], 0)
	return crc32.Checksum(c, castagnoli)
}

// vhdxImage is what the VHDX headers say, for the BAT walk.
type vhdxImage struct {
	size             int64
	batOff, batLen   int64
	metaOff, metaLen int64
	blockSize        int64
	logical          int64
	virtualSize      int64
	hasParent        bool
	claims           *span.Map
}

func inspectVHDX(r io.ReaderAt, size int64) (*Info, error) {
	if size < mib {
		return nil, truncated(mib, size, "the VHDX headers and region tables")
	}
	v := &vhdxImage{size: size, claims: span.NewMap(mib, 0, maxMapBytes)}
	// The first MiB holds the identifier, both headers and both region
	// tables.
	v.claims.Claim("the VHDX headers", span.Meta, 0, mib)
	if err := v.readHeader(r); err != nil {
		return nil, err
	}
	if err := v.readRegions(r); err != nil {
		return nil, err
	}
	if err := v.readMetadata(r); err != nil {
		return nil, err
	}
	if v.hasParent {
		return nil, unsupported("Merge the differencing disk in Hyper-V (Edit Disk > Merge), then convert the merged VHDX.",
			"the VHDX is a differencing disk (it has a parent), which vmconv does not read")
	}
	if err := v.checkBAT(r); err != nil {
		return nil, err
	}
	info := &Info{VirtualSize: v.virtualSize}
	if v.claims.Full() {
		info.Warnings = append(info.Warnings, "the VHDX is too large for the plan to check every block against every other; qemu-img check covers it")
	}
	return info, nil
}

// readHeader picks the current of the two headers (valid checksum, higher
// sequence number) and refuses a log that needs replaying.
func (v *vhdxImage) readHeader(r io.ReaderAt) error {
	le := binary.LittleEndian
	var cur []byte
	var seq uint64
	for _, off := range []int64{64 << 10, 128 << 10} {
		h, err := readFull(r, off, 4096)
		if err != nil {
			return err
		}
		if !bytes.Equal(h[:4], []byte("head")) || vhdxChecksum(h) != le.Uint32(h[4:]) {
			continue
		}
		if cur == nil || le.Uint64(h[8:]) > seq {
			cur, seq = h, le.Uint64(h[8:])
		}
	}
	if cur == nil {
		return corruptAt("VHDX header", 64<<10, "neither VHDX header (at 64 KiB and 128 KiB) has a valid signature and checksum")
	}
	if !bytes.Equal(cur[48:64], make([]byte, 16)) {
		return unsupported("Mount and unmount the disk once in Hyper-V or Windows so the log is replayed, then convert it.",
			"the VHDX has an unreplayed log (it was not closed cleanly)")
	}
	if ver := le.Uint16(cur[66:]); ver != 1 {
		return corruptAt("VHDX header", 64<<10, "unsupported VHDX version %d", ver)
	}
	// The log region is empty when replayed, but it is still claimed.
	logLen, logOff := int64(le.Uint32(cur[68:])), le.Uint64(cur[72:])
	if logLen > 0 {
		off, ok := span.Int(logOff)
		if !ok || off%mib != 0 || logLen%mib != 0 {
			return corruptAt("VHDX log", 64<<10, "the VHDX log (offset %#x, %d bytes) is not aligned to 1 MiB", logOff, logLen)
		}
		if err := inFile(off, logLen, v.size, "the VHDX log"); err != nil {
			return err
		}
		if c := v.claims.Claim("the VHDX log", span.Meta, off, logLen); c != nil {
			return overlaps("the VHDX log", off, c)
		}
	}
	return nil
}

func (v *vhdxImage) readRegions(r io.ReaderAt) error {
	le := binary.LittleEndian
	const rtAt = 192 << 10
	rt, err := readFull(r, rtAt, 64<<10)
	if err != nil {
		return err
	}
	if !bytes.Equal(rt[:4], []byte("regi")) || vhdxChecksum(rt) != le.Uint32(rt[4:]) {
		return corruptAt("VHDX region table", rtAt, "the VHDX region table signature or checksum is wrong")
	}
	n := int64(le.Uint32(rt[8:]))
	if n > 2047 {
		return corruptAt("VHDX region table", rtAt+8, "the VHDX region table has %d entries, more than 2047", n)
	}
	for i := int64(0); i < n; i++ {
		at := 16 + i*32
		e := rt[at : at+32]
		what := fmt.Sprintf("VHDX region %d", i)
		off, ok := span.Int(le.Uint64(e[16:]))
		l := int64(le.Uint32(e[24:]))
		if !ok || off < mib || off%mib != 0 || l == 0 || l%mib != 0 {
			return corruptAt(what, rtAt+at, "%s (offset %#x, %d bytes) is not aligned to 1 MiB after the headers", what, le.Uint64(e[16:]), l)
		}
		if err := inFile(off, l, v.size, what); err != nil {
			return err
		}
		switch {
		case bytes.Equal(e[:16], vhdxRegionBAT) && v.batOff == 0:
			v.batOff, v.batLen, what = off, l, "the VHDX block allocation table"
		case bytes.Equal(e[:16], vhdxRegionMetadata) && v.metaOff == 0:
			v.metaOff, v.metaLen, what = off, l, "the VHDX metadata region"
		case bytes.Equal(e[:16], vhdxRegionBAT), bytes.Equal(e[:16], vhdxRegionMetadata):
			return corruptAt(what, rtAt+at, "the VHDX region table lists the same region twice")
		case le.Uint32(e[28:])&1 != 0:
			return unsupported("Convert it with Hyper-V (Convert-VHD) first.", "the VHDX requires a region vmconv does not know")
		}
		if c := v.claims.Claim(what, span.Meta, off, l); c != nil {
			return overlaps(what, off, c)
		}
	}
	if v.batOff == 0 || v.metaOff == 0 {
		return corruptAt("VHDX region table", rtAt, "the VHDX region table lacks the BAT or metadata region")
	}
	return nil
}

func (v *vhdxImage) readMetadata(r io.ReaderAt) error {
	le := binary.LittleEndian
	meta, err := readFull(r, v.metaOff, 64<<10)
	if err != nil {
		return err
	}
	if !bytes.Equal(meta[:8], []byte("metadata")) {
		return corruptAt("VHDX metadata table", v.metaOff, "the VHDX metadata table signature is missing")
	}
	count := int64(le.Uint16(meta[10:]))
	if count > 2047 {
		return corruptAt("VHDX metadata table", v.metaOff+10, "the VHDX metadata table has %d entries, more than 2047", count)
	}
	var blockSize, logical uint32
	var vs uint64
	var vsAt int64
	seen := 0
	for i := int64(0); i < count; i++ {
		at := 32 + i*32
		e := meta[at : at+32]
		what := fmt.Sprintf("VHDX metadata item %d", i)
		off, l := int64(le.Uint32(e[16:])), int64(le.Uint32(e[20:]))
		if l == 0 {
			continue
		}
		if off < 64<<10 || l > 64<<10 || off+l > v.metaLen {
			return corruptAt(what, v.metaOff+at, "%s (offset %d, %d bytes) lies outside the metadata region", what, off, l)
		}
		item, err := readFull(r, v.metaOff+off, int(l))
		if err != nil {
			return err
		}
		switch id := e[:16]; {
		case bytes.Equal(id, vhdxFileParams) && l >= 8:
			blockSize, v.hasParent = le.Uint32(item), le.Uint32(item[4:])&2 != 0
			seen |= 1
		case bytes.Equal(id, vhdxVirtualSize) && l >= 8:
			vs, vsAt = le.Uint64(item), v.metaOff+off
			seen |= 2
		case bytes.Equal(id, vhdxLogicalSector) && l >= 4:
			logical = le.Uint32(item)
			seen |= 4
		case bytes.Equal(id, vhdxPhysicalSector), bytes.Equal(id, vhdxPage83), bytes.Equal(id, vhdxParentLocator):
		case le.Uint32(e[24:])&4 != 0:
			return unsupported("Convert it with Hyper-V (Convert-VHD) first.", "the VHDX requires metadata vmconv does not know")
		}
	}
	if seen != 7 {
		return corruptAt("VHDX metadata table", v.metaOff, "the VHDX metadata lacks the file parameters, the virtual size or the sector size")
	}
	if v.hasParent {
		return nil
	}
	if blockSize < mib || blockSize > 256*mib || bits.OnesCount32(blockSize) != 1 {
		return corruptAt("VHDX file parameters", v.metaOff, "the VHDX block size %d is not a power of two from 1 MiB to 256 MiB", blockSize)
	}
	if logical != 512 && logical != 4096 {
		return corruptAt("VHDX logical sector size", v.metaOff, "the VHDX logical sector size %d is neither 512 nor 4096", logical)
	}
	v.blockSize, v.logical = int64(blockSize), int64(logical)
	if v.virtualSize, err = checkVirtualSize("VHDX", vs, vsAt); err != nil {
		return err
	}
	if v.virtualSize%v.logical != 0 {
		return corruptAt("VHDX virtual size", vsAt, "the VHDX virtual size %d is not a whole number of %d-byte sectors", v.virtualSize, v.logical)
	}
	return nil
}

// checkBAT walks the block allocation table: payload entries interleaved
// with one sector-bitmap entry per chunk. Every present block must lie
// inside the file, apart from the headers, regions and other blocks.
func (v *vhdxImage) checkBAT(r io.ReaderAt) error {
	le := binary.LittleEndian
	chunk := int64(1<<23) * v.logical / v.blockSize
	payloads := (v.virtualSize + v.blockSize - 1) / v.blockSize
	total := payloads + (payloads-1)/chunk
	if total*8 > v.batLen {
		return corruptAt("VHDX block allocation table", v.batOff,
			"the VHDX BAT region holds %d entries, the %d-byte disk needs %d", v.batLen/8, v.virtualSize, total)
	}
	if total*8 > maxTableRead {
		return corruptAt("VHDX block allocation table", v.batOff, "the VHDX BAT of %d entries is larger than the %d MiB the plan reads", total, maxTableRead>>20)
	}
	return scanTable(r, v.batOff, total, 8, func(i int64, b []byte) error {
		e := le.Uint64(b)
		at := v.batOff + i*8
		sectorBitmap := (i+1)%(chunk+1) == 0
		what := fmt.Sprintf("VHDX payload block %d", i-i/(chunk+1))
		if sectorBitmap {
			what = fmt.Sprintf("VHDX sector bitmap %d", i/(chunk+1))
		}
		switch state := e & 7; {
		case sectorBitmap && state == 0, !sectorBitmap && state <= 3:
			return nil // not present, zero or unmapped
		case sectorBitmap && state != 6, !sectorBitmap && state != 6 && state != 7:
			return corruptAt(what, at, "%s has the invalid state %d", what, state)
		}
		n := v.blockSize
		if sectorBitmap {
			n = mib
		}
		off, ok := span.Mul(int64(e>>20), mib)
		if !ok {
			return corruptAt(what, at, "%s lies at an impossible offset", what)
		}
		if err := inFile(off, n, v.size, what); err != nil {
			return err
		}
		if c := v.claims.Claim("", span.Data, off, n); c != nil {
			return corruptAt(what, at, "%s at offset %d overlaps %s at offset %d", what, off, c.With, c.Offset)
		}
		return nil
	})
}
