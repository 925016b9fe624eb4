package vmdk

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math/bits"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
)

// Magics, as the first four bytes of the file.
var (
	MagicKDMV = []byte("KDMV")
	MagicCOWD = []byte("COWD")
	// seSparse const header magic 0x00000000cafebabe, little endian.
	MagicSESparse = []byte{0xbe, 0xba, 0xfe, 0xca, 0, 0, 0, 0}
)

const (
	sector = 512

	flagNLDetect   = 1 << 0
	flagRGD        = 1 << 1
	flagZeroGrain  = 1 << 2
	flagCompressed = 1 << 16
	flagMarkers    = 1 << 17

	gdAtEnd = 0xffffffffffffffff

	markerEOS    = 0
	markerFooter = 3

	// maxTableBytes bounds how much grain-table metadata a check reads:
	// 256 MiB covers a 4 TiB disk with 64 KiB grains.
	maxTableBytes = 256 << 20
)

// SparseHeader is the 512-byte header of a hosted sparse extent (KDMV):
// monolithicSparse, streamOptimized and twoGbMaxExtentSparse pieces.
type SparseHeader struct {
	Version          uint32
	Flags            uint32
	Capacity         uint64 // sectors
	GrainSize        uint64 // sectors
	DescriptorOffset uint64 // sectors
	DescriptorSize   uint64 // sectors
	NumGTEsPerGT     uint32
	RGDOffset        uint64
	GDOffset         uint64
	Overhead         uint64 // sectors before the first grain
	UncleanShutdown  bool
	Compression      uint16
	// FooterGD is set when the header defers the grain directory to the
	// footer, as VMware's streamOptimized exports do.
	FooterGD bool
}

// Compressed reports a streamOptimized extent (deflate grains with markers).
func (h *SparseHeader) Compressed() bool { return h.Compression == 1 }

func parseSparseHeader(b []byte) *SparseHeader {
	le := binary.LittleEndian
	return &SparseHeader{
		Version:          le.Uint32(b[4:]),
		Flags:            le.Uint32(b[8:]),
		Capacity:         le.Uint64(b[12:]),
		GrainSize:        le.Uint64(b[20:]),
		DescriptorOffset: le.Uint64(b[28:]),
		DescriptorSize:   le.Uint64(b[36:]),
		NumGTEsPerGT:     le.Uint32(b[44:]),
		RGDOffset:        le.Uint64(b[48:]),
		GDOffset:         le.Uint64(b[56:]),
		Overhead:         le.Uint64(b[64:]),
		UncleanShutdown:  b[72] != 0,
		Compression:      le.Uint16(b[77:]),
	}
}

func corrupt(format string, args ...any) *fault.Error {
	return fault.New(fault.CorruptImage, "", format, args...)
}

func truncated(need, have int64, what string) *fault.Error {
	return fault.New(fault.TruncatedImage, "",
		"%s ends at byte %d but the file is only %d bytes long", what, need, have).
		WithHint("The file was cut short, typically by an interrupted copy or download. Copy it again from the original datastore and compare its size.")
}

// ReadSparseHeader reads and validates a KDMV header. For streamOptimized
// files whose grain directory is at the end, the footer's copy of the
// header is returned, as VMware and qemu use it.
func ReadSparseHeader(r io.ReaderAt, size int64) (*SparseHeader, error) {
	if size < sector {
		return nil, truncated(sector, size, "the sparse VMDK header")
	}
	b := make([]byte, sector)
	if _, err := r.ReadAt(b, 0); err != nil {
		return nil, fault.Wrap(fault.SourceUnreadable, "", err, "cannot read the VMDK header")
	}
	if !bytes.Equal(b[:4], MagicKDMV) {
		return nil, corrupt("not a sparse VMDK extent: bad magic %q", b[:4])
	}
	h := parseSparseHeader(b)
	if h.Flags&flagNLDetect != 0 && !bytes.Equal(b[73:77], []byte{'\n', ' ', '\r', '\n'}) {
		return nil, corrupt("the header's line-ending check bytes are altered; the file was probably transferred in FTP ASCII mode").
			WithHint("Transfer the file again in binary mode.")
	}
	if h.Version < 1 || h.Version > 3 {
		return nil, corrupt("unsupported sparse VMDK version %d", h.Version)
	}
	if h.GDOffset == gdAtEnd {
		if size < 3*sector {
			return nil, truncated(3*sector, size, "the streamOptimized footer")
		}
		f := make([]byte, 3*sector)
		if _, err := r.ReadAt(f, size-3*sector); err != nil {
			return nil, fault.Wrap(fault.SourceUnreadable, "", err, "cannot read the streamOptimized footer")
		}
		le := binary.LittleEndian
		footerOK := le.Uint32(f[8:]) == 0 && le.Uint32(f[12:]) == markerFooter &&
			bytes.Equal(f[sector:sector+4], MagicKDMV) &&
			le.Uint64(f[2*sector:]) == 0 && le.Uint32(f[2*sector+8:]) == 0 && le.Uint32(f[2*sector+12:]) == markerEOS
		if !footerOK {
			return nil, fault.New(fault.TruncatedImage, "",
				"the streamOptimized VMDK has no footer and end-of-stream marker at its end").
				WithHint("The file was cut short, typically by an interrupted export or download. Export or download it again.")
		}
		fh := parseSparseHeader(f[sector : 2*sector])
		fh.DescriptorOffset, fh.DescriptorSize = h.DescriptorOffset, h.DescriptorSize
		fh.FooterGD = true
		h = fh
		if h.GDOffset == gdAtEnd {
			return nil, corrupt("the streamOptimized footer does not locate the grain directory")
		}
	}
	if h.Capacity == 0 {
		// qemu would then read the embedded text as a descriptor of other
		// files; a real extent always has a capacity.
		return nil, corrupt("the sparse header declares a capacity of 0 sectors")
	}
	if h.GrainSize == 0 || h.GrainSize > 0x200000 || bits.OnesCount64(h.GrainSize) != 1 {
		return nil, corrupt("grain size %d sectors is not a power of two up to 1 GiB", h.GrainSize)
	}
	if h.NumGTEsPerGT == 0 || h.NumGTEsPerGT > 512 {
		return nil, corrupt("%d grain table entries per table; VMDK allows 1 to 512", h.NumGTEsPerGT)
	}
	if h.Compression > 1 {
		return nil, corrupt("unknown compression algorithm %d", h.Compression)
	}
	if h.Capacity > 1<<40 {
		return nil, corrupt("capacity %d sectors is beyond any VMDK", h.Capacity)
	}
	if need := int64(h.Overhead) * sector; need > size {
		return nil, truncated(need, size, "the metadata area before the first grain")
	}
	if h.DescriptorOffset != 0 {
		if end := int64(h.DescriptorOffset+h.DescriptorSize) * sector; end > size {
			return nil, truncated(end, size, "the embedded descriptor")
		}
	}
	return h, nil
}

// gdEntries is the number of grain directory entries the capacity needs.
func (h *SparseHeader) gdEntries() uint64 {
	per := uint64(h.NumGTEsPerGT) * h.GrainSize
	return (h.Capacity + per - 1) / per
}

// EmbeddedDescriptor returns the descriptor text stored inside a
// monolithicSparse or streamOptimized file, or nil if it has none.
func (h *SparseHeader) EmbeddedDescriptor(r io.ReaderAt) ([]byte, error) {
	if h.DescriptorOffset == 0 || h.DescriptorSize == 0 {
		return nil, nil
	}
	n := h.DescriptorSize * sector
	if n > MaxDescriptorSize {
		return nil, corrupt("embedded descriptor of %d bytes is larger than the %d allowed", n, MaxDescriptorSize)
	}
	b := make([]byte, n)
	if _, err := r.ReadAt(b, int64(h.DescriptorOffset)*sector); err != nil {
		return nil, fault.Wrap(fault.SourceUnreadable, "", err, "cannot read the embedded descriptor")
	}
	return b, nil
}

// CheckTables walks the grain directory and every grain table and verifies
// that each table and each allocated grain lies inside the file. It is the
// check that catches a sparse VMDK cut short by an interrupted copy.
func (h *SparseHeader) CheckTables(r io.ReaderAt, size int64) error {
	n := h.gdEntries()
	if n > 32<<20 {
		return corrupt("grain directory of %d entries is beyond any VMDK", n)
	}
	gtBytes := int64(h.NumGTEsPerGT) * 4
	if int64(n)*gtBytes > maxTableBytes {
		return corrupt("grain tables of %d bytes exceed the %d this check reads", int64(n)*gtBytes, maxTableBytes)
	}
	gdOff := int64(h.GDOffset) * sector
	if end := gdOff + int64(n)*4; end > size {
		return truncated(end, size, "the grain directory")
	}
	gd := make([]byte, n*4)
	if _, err := r.ReadAt(gd, gdOff); err != nil {
		return fault.Wrap(fault.SourceUnreadable, "", err, "cannot read the grain directory")
	}
	grainBytes := int64(h.GrainSize) * sector
	gt := make([]byte, gtBytes)
	for i := uint64(0); i < n; i++ {
		gtSector := binary.LittleEndian.Uint32(gd[i*4:])
		if gtSector == 0 {
			continue
		}
		gtOff := int64(gtSector) * sector
		if end := gtOff + gtBytes; end > size {
			return truncated(end, size, fmt.Sprintf("grain table %d", i))
		}
		if _, err := r.ReadAt(gt, gtOff); err != nil {
			return fault.Wrap(fault.SourceUnreadable, "", err, "cannot read grain table %d", i)
		}
		for j := int64(0); j < int64(h.NumGTEsPerGT); j++ {
			g := binary.LittleEndian.Uint32(gt[j*4:])
			if g == 0 || (g == 1 && h.Flags&flagZeroGrain != 0) {
				continue
			}
			off := int64(g) * sector
			need := off + grainBytes
			if h.Compressed() {
				need = off + 12 // a grain marker: LBA and compressed size
			}
			if need > size {
				lba := (int64(i)*int64(h.NumGTEsPerGT) + j) * int64(h.GrainSize)
				return truncated(need, size, fmt.Sprintf("the grain for disk offset %d", lba*sector))
			}
		}
	}
	return nil
}

// COWDHeader is the header of an ESX vmfsSparse ("-delta.vmdk") extent.
type COWDHeader struct {
	Version    uint32
	Flags      uint32
	Sectors    uint32
	GrainSize  uint32 // sectors
	GDOffset   uint32 // sectors
	GDEntries  uint32
	FreeSector uint32
}

// cowdGTEntries is fixed for COWD files.
const cowdGTEntries = 4096

// ReadCOWDHeader reads and validates a vmfsSparse header.
func ReadCOWDHeader(r io.ReaderAt, size int64) (*COWDHeader, error) {
	if size < sector {
		return nil, truncated(sector, size, "the vmfsSparse header")
	}
	b := make([]byte, 44)
	if _, err := r.ReadAt(b, 0); err != nil {
		return nil, fault.Wrap(fault.SourceUnreadable, "", err, "cannot read the vmfsSparse header")
	}
	if !bytes.Equal(b[:4], MagicCOWD) {
		return nil, corrupt("not a vmfsSparse extent: bad magic %q", b[:4])
	}
	le := binary.LittleEndian
	h := &COWDHeader{
		Version: le.Uint32(b[4:]), Flags: le.Uint32(b[8:]), Sectors: le.Uint32(b[12:]),
		GrainSize: le.Uint32(b[16:]), GDOffset: le.Uint32(b[20:]), GDEntries: le.Uint32(b[24:]),
		FreeSector: le.Uint32(b[28:]),
	}
	if h.Version != 1 {
		return nil, corrupt("unsupported vmfsSparse version %d", h.Version)
	}
	if h.Sectors == 0 {
		return nil, corrupt("the vmfsSparse header declares 0 sectors")
	}
	if h.GrainSize == 0 || h.GrainSize > 0x200000 || bits.OnesCount32(h.GrainSize) != 1 {
		return nil, corrupt("grain size %d sectors is not a power of two", h.GrainSize)
	}
	per := uint64(cowdGTEntries) * uint64(h.GrainSize)
	if want := (uint64(h.Sectors) + per - 1) / per; uint64(h.GDEntries) < want {
		return nil, corrupt("grain directory has %d entries, %d sectors need %d", h.GDEntries, h.Sectors, want)
	}
	if h.GDEntries > 32<<20 {
		return nil, corrupt("grain directory of %d entries is beyond any VMDK", h.GDEntries)
	}
	return h, nil
}

// CheckTables verifies every grain table and grain lies inside the file.
func (h *COWDHeader) CheckTables(r io.ReaderAt, size int64) error {
	gdOff := int64(h.GDOffset) * sector
	n := int64(h.GDEntries)
	if end := gdOff + n*4; end > size {
		return truncated(end, size, "the grain directory")
	}
	if n*cowdGTEntries*4 > maxTableBytes {
		return corrupt("grain tables exceed the %d bytes this check reads", maxTableBytes)
	}
	gd := make([]byte, n*4)
	if _, err := r.ReadAt(gd, gdOff); err != nil {
		return fault.Wrap(fault.SourceUnreadable, "", err, "cannot read the grain directory")
	}
	gt := make([]byte, cowdGTEntries*4)
	grainBytes := int64(h.GrainSize) * sector
	for i := int64(0); i < n; i++ {
		s := binary.LittleEndian.Uint32(gd[i*4:])
		if s == 0 {
			continue
		}
		off := int64(s) * sector
		if end := off + int64(len(gt)); end > size {
			return truncated(end, size, fmt.Sprintf("grain table %d", i))
		}
		if _, err := r.ReadAt(gt, off); err != nil {
			return fault.Wrap(fault.SourceUnreadable, "", err, "cannot read grain table %d", i)
		}
		for j := int64(0); j < cowdGTEntries; j++ {
			g := binary.LittleEndian.Uint32(gt[j*4:])
			if g == 0 {
				continue
			}
			if end := int64(g)*sector + grainBytes; end > size {
				lba := (i*cowdGTEntries + j) * int64(h.GrainSize)
				return truncated(end, size, fmt.Sprintf("the grain for disk offset %d", lba*sector))
			}
		}
	}
	return nil
}

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
}

// ReadSESparseHeader reads and validates the const and volatile headers
// with the same strictness as qemu, which is the only other reader.
func ReadSESparseHeader(r io.ReaderAt, size int64) (*SESparseHeader, error) {
	if size < 2*sector {
		return nil, truncated(2*sector, size, "the seSparse headers")
	}
	b := make([]byte, sector)
	if _, err := r.ReadAt(b, 0); err != nil {
		return nil, fault.Wrap(fault.SourceUnreadable, "", err, "cannot read the seSparse header")
	}
	le := binary.LittleEndian
	u := func(i int) uint64 { return le.Uint64(b[i*8:]) }
	if u(0) != 0xcafebabe {
		return nil, corrupt("not an seSparse extent: bad magic %#x", u(0))
	}
	if u(1) != 0x0000000200000001 {
		return nil, corrupt("unsupported seSparse version %#x", u(1))
	}
	h := &SESparseHeader{
		Capacity: u(2), GrainSize: u(3), GrainTableSize: u(4),
		VolatileOffset: u(10), GrainDirOffset: u(16), GrainDirSize: u(17),
		GrainTablesOffset: u(18), GrainTablesSize: u(19), GrainsOffset: u(22), GrainsSize: u(23),
	}
	if h.GrainSize != 8 || h.GrainTableSize != 64 {
		return nil, corrupt("unsupported seSparse geometry: grain %d, table %d sectors", h.GrainSize, h.GrainTableSize)
	}
	if u(5) != 0 || u(6) != 0 || u(7) != 0 || u(8) != 0 || u(9) != 0 {
		return nil, corrupt("seSparse header has unsupported flags or reserved bits set")
	}
	if len(bytes.Trim(b[26*8:], "\x00")) != 0 {
		return nil, corrupt("seSparse header padding is not zero")
	}
	if h.Capacity == 0 || h.Capacity > 1<<40 {
		return nil, corrupt("seSparse capacity %d sectors is out of range", h.Capacity)
	}
	voff := int64(h.VolatileOffset) * sector
	if voff+sector > size {
		return nil, truncated(voff+sector, size, "the seSparse volatile header")
	}
	v := make([]byte, sector)
	if _, err := r.ReadAt(v, voff); err != nil {
		return nil, fault.Wrap(fault.SourceUnreadable, "", err, "cannot read the seSparse volatile header")
	}
	if le.Uint64(v) != 0xcafecafe {
		return nil, corrupt("seSparse volatile header has a bad magic")
	}
	if le.Uint64(v[24:]) != 0 {
		return nil, fault.New(fault.UnsupportedFormat, "", "the seSparse journal needs replaying (the snapshot was not closed cleanly)").
			WithHint("Power the VM off cleanly or consolidate its snapshots on ESXi, then copy the disk again.")
	}
	return h, nil
}

// CheckTables verifies every grain table and grain lies inside the file.
func (h *SESparseHeader) CheckTables(r io.ReaderAt, size int64) error {
	le := binary.LittleEndian
	entries := int64(h.GrainDirSize) * sector / 8
	gdOff := int64(h.GrainDirOffset) * sector
	if end := gdOff + entries*8; end > size {
		return truncated(end, size, "the seSparse grain directory")
	}
	tableBytes := int64(h.GrainTableSize) * sector
	if entries*tableBytes > 4*maxTableBytes {
		return corrupt("seSparse grain tables are too large to check")
	}
	gd := make([]byte, entries*8)
	if _, err := r.ReadAt(gd, gdOff); err != nil {
		return fault.Wrap(fault.SourceUnreadable, "", err, "cannot read the seSparse grain directory")
	}
	gt := make([]byte, tableBytes)
	grainBytes := int64(h.GrainSize) * sector
	for i := int64(0); i < entries; i++ {
		e := le.Uint64(gd[i*8:])
		if e == 0 {
			continue
		}
		if e&0xffffffff00000000 != 0x1000000000000000 {
			return corrupt("seSparse grain directory entry %d is malformed (%#x)", i, e)
		}
		off := (int64(h.GrainTablesOffset) + int64(e&0xffffffff)*h.tableSectors()) * sector
		if end := off + tableBytes; end > size {
			return truncated(end, size, fmt.Sprintf("seSparse grain table %d", i))
		}
		if _, err := r.ReadAt(gt, off); err != nil {
			return fault.Wrap(fault.SourceUnreadable, "", err, "cannot read seSparse grain table %d", i)
		}
		for j := int64(0); j < tableBytes/8; j++ {
			g := le.Uint64(gt[j*8:])
			switch g & 0xf000000000000000 {
			case 0:
				if g != 0 {
					return corrupt("seSparse grain table %d entry %d is malformed", i, j)
				}
			case 0x1000000000000000, 0x2000000000000000:
			case 0x3000000000000000:
				idx := int64((g&0x0fff000000000000)>>48 | (g&0x0000ffffffffffff)<<12)
				end := (int64(h.GrainsOffset)+idx*int64(h.GrainSize))*sector + grainBytes
				if end > size {
					return truncated(end, size, "an seSparse grain")
				}
			default:
				return corrupt("seSparse grain table %d entry %d has an unknown type", i, j)
			}
		}
	}
	return nil
}

func (h *SESparseHeader) tableSectors() int64 { return int64(h.GrainTableSize) }
