package vmdk

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math/bits"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/engine/internal/span"
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

	// maxGDEntries bounds a grain directory: 32M entries.
	maxGDEntries = 32 << 20
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
	// Unchecked is set by CheckTables when the tables exceeded what a check
	// reads (maxTableBytes) and the rest was not checked.
	Unchecked bool
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

// ReadSparseHeader reads and validates a KDMV header. For streamOptimized
// files whose grain directory is at the end, the footer's copy of the
// header is returned, as VMware and qemu use it.
func ReadSparseHeader(r io.ReaderAt, size int64) (*SparseHeader, error) {
	if size < sector {
		return nil, truncated(sector, size, "the sparse VMDK header")
	}
	b := make([]byte, sector)
	if _, err := r.ReadAt(b, 0); err != nil {
		return nil, readErr(err, "the VMDK header", 0)
	}
	if !bytes.Equal(b[:4], MagicKDMV) {
		return nil, corruptAt("sparse VMDK header", 0, "not a sparse VMDK extent: bad magic %q", b[:4])
	}
	h := parseSparseHeader(b)
	if h.Flags&flagNLDetect != 0 && !bytes.Equal(b[73:77], []byte{'\n', ' ', '\r', '\n'}) {
		return nil, corruptAt("sparse VMDK header", 73, "the header's line-ending check bytes are altered; the file was probably transferred in FTP ASCII mode").
			WithHint("Transfer the file again in binary mode.")
	}
	if h.Version < 1 || h.Version > 3 {
		return nil, corruptAt("sparse VMDK header", 4, "unsupported sparse VMDK version %d", h.Version)
	}
	if h.GDOffset == gdAtEnd {
		if size < 3*sector {
			return nil, truncated(3*sector, size, "the streamOptimized footer")
		}
		f := make([]byte, 3*sector)
		if _, err := r.ReadAt(f, size-3*sector); err != nil {
			return nil, readErr(err, "the streamOptimized footer", size-3*sector)
		}
		le := binary.LittleEndian
		footerOK := le.Uint32(f[8:]) == 0 && le.Uint32(f[12:]) == markerFooter &&
			bytes.Equal(f[sector:sector+4], MagicKDMV) &&
			le.Uint64(f[2*sector:]) == 0 && le.Uint32(f[2*sector+8:]) == 0 && le.Uint32(f[2*sector+12:]) == markerEOS
		if !footerOK {
			return nil, fault.New(fault.TruncatedImage, "",
				"the streamOptimized VMDK has no footer and end-of-stream marker at its end").
				WithHint("The file was cut short, typically by an interrupted export or download. Export or download it again.").
				WithFact("Structure", "streamOptimized footer")
		}
		fh := parseSparseHeader(f[sector : 2*sector])
		fh.DescriptorOffset, fh.DescriptorSize = h.DescriptorOffset, h.DescriptorSize
		fh.FooterGD = true
		h = fh
		if h.GDOffset == gdAtEnd {
			return nil, corruptAt("streamOptimized footer", size-2*sector, "the streamOptimized footer does not locate the grain directory")
		}
	}
	if h.Capacity == 0 {
		// qemu would then read the embedded text as a descriptor of other
		// files; a real extent always has a capacity.
		return nil, corruptAt("sparse VMDK header", 12, "the sparse header declares a capacity of 0 sectors")
	}
	if h.Capacity > maxSectors {
		return nil, corruptAt("sparse VMDK header", 12, "capacity %d sectors is beyond any VMDK (at most %d TiB)", h.Capacity, maxSectors>>31)
	}
	if h.GrainSize == 0 || h.GrainSize > 0x200000 || bits.OnesCount64(h.GrainSize) != 1 {
		return nil, corruptAt("sparse VMDK header", 20, "grain size %d sectors is not a power of two up to 1 GiB", h.GrainSize)
	}
	if h.NumGTEsPerGT == 0 || h.NumGTEsPerGT > 512 {
		return nil, corruptAt("sparse VMDK header", 44, "%d grain table entries per table; VMDK allows 1 to 512", h.NumGTEsPerGT)
	}
	if h.Compression > 1 {
		return nil, corruptAt("sparse VMDK header", 77, "unknown compression algorithm %d", h.Compression)
	}
	overhead, err := sectors(h.Overhead, "the metadata area before the first grain", 64)
	if err != nil {
		return nil, err
	}
	if overhead > size {
		return nil, truncated(overhead, size, "the metadata area before the first grain")
	}
	if h.DescriptorOffset != 0 {
		off, err := sectors(h.DescriptorOffset, "the embedded descriptor", 28)
		if err != nil {
			return nil, err
		}
		n, err := sectors(h.DescriptorSize, "the embedded descriptor", 36)
		if err != nil {
			return nil, err
		}
		if err := inFile(off, n, size, "the embedded descriptor"); err != nil {
			return nil, err
		}
	}
	if _, err := sectors(h.GDOffset, "the grain directory", 56); err != nil {
		return nil, err
	}
	return h, nil
}

// gdEntries is the number of grain directory entries the capacity needs.
func (h *SparseHeader) gdEntries() int64 {
	per := uint64(h.NumGTEsPerGT) * h.GrainSize
	return int64((h.Capacity + per - 1) / per)
}

// EmbeddedDescriptor returns the descriptor text stored inside a
// monolithicSparse or streamOptimized file, or nil if it has none.
func (h *SparseHeader) EmbeddedDescriptor(r io.ReaderAt) ([]byte, error) {
	if h.DescriptorOffset == 0 || h.DescriptorSize == 0 {
		return nil, nil
	}
	if h.DescriptorSize > MaxDescriptorSize/sector {
		return nil, corruptAt("sparse VMDK header", 36, "embedded descriptor of %d sectors is larger than the %d bytes allowed", h.DescriptorSize, MaxDescriptorSize)
	}
	off, err := sectors(h.DescriptorOffset, "the embedded descriptor", 28)
	if err != nil {
		return nil, err
	}
	b := make([]byte, h.DescriptorSize*sector)
	if _, err := r.ReadAt(b, off); err != nil {
		return nil, readErr(err, "the embedded descriptor", off)
	}
	return b, nil
}

// CheckTables walks the grain directory and every grain table and verifies
// that each table and each allocated grain lies inside the file, outside
// the header, descriptor and tables, and apart from every other grain. It
// is the check that catches a sparse VMDK cut short by an interrupted copy,
// and one whose tables were altered to alias data or metadata.
func (h *SparseHeader) CheckTables(r io.ReaderAt, size int64) error {
	n := h.gdEntries()
	if n > maxGDEntries {
		return corruptAt("sparse VMDK header", 12, "grain directory of %d entries is beyond any VMDK", n)
	}
	gtBytes := int64(h.NumGTEsPerGT) * 4
	grainBytes := int64(h.GrainSize) * sector
	overhead := int64(h.Overhead) * sector // bounded by ReadSparseHeader
	gdOff := int64(h.GDOffset) * sector
	l := newLayout(size, grainBytes, overhead%grainBytes, h.Compressed())
	l.start = overhead
	// In a stream (grain directory in the footer) each table is preceded
	// by a marker sector; qemu's streamOptimized keeps its tables in the
	// header area, without markers.
	marker := int64(0)
	if h.FooterGD && h.Flags&flagMarkers != 0 {
		marker = sector
	}
	if err := l.meta(region{"the sparse VMDK header", -1, 0, sector}); err != nil {
		return err
	}
	if h.DescriptorOffset != 0 && h.DescriptorSize != 0 {
		if err := l.meta(region{"the embedded descriptor", -1, int64(h.DescriptorOffset) * sector, int64(h.DescriptorSize) * sector}); err != nil {
			return err
		}
	}
	if h.FooterGD {
		if err := l.meta(region{"the streamOptimized footer", -1, size - 3*sector, 3 * sector}); err != nil {
			return err
		}
	}
	dirs := []struct {
		what, table string
		off         int64
	}{{"the grain directory", "grain table", gdOff}}
	if h.Flags&flagRGD != 0 && h.RGDOffset != 0 {
		rgdOff, err := sectors(h.RGDOffset, "the redundant grain directory", 48)
		if err != nil {
			return err
		}
		dirs = append(dirs, struct {
			what, table string
			off         int64
		}{"the redundant grain directory", "redundant grain table", rgdOff})
	}
	for _, d := range dirs {
		if d.off < marker {
			return corruptAt(d.what, d.off, "%s at offset %d has no room for its marker", d.what, d.off)
		}
		if err := l.meta(region{d.what, -1, d.off - marker, n*4 + marker}); err != nil {
			return err
		}
		err := span.Scan(r, d.off, n, 4, func(i int64, e []byte) error {
			if s := binary.LittleEndian.Uint32(e); s != 0 {
				gtOff := int64(s) * sector
				if gtOff < marker {
					return corruptAt(d.what, d.off+i*4, "%s %d at offset %d has no room for its marker", d.table, i, gtOff)
				}
				return l.meta(region{d.table, i, gtOff - marker, gtBytes + marker})
			}
			return nil
		})
		if err != nil {
			return tableErr(err, d.what)
		}
	}
	if err := l.seal(); err != nil {
		return err
	}
	gt := make([]byte, gtBytes)
	err := span.Scan(r, gdOff, n, 4, func(i int64, e []byte) error {
		gtOff := int64(binary.LittleEndian.Uint32(e)) * sector
		if gtOff == 0 || !l.readTable(gtBytes) {
			return nil
		}
		if _, err := r.ReadAt(gt, gtOff); err != nil {
			return readErr(err, fmt.Sprintf("grain table %d", i), gtOff)
		}
		for j := int64(0); j < int64(h.NumGTEsPerGT); j++ {
			g := binary.LittleEndian.Uint32(gt[j*4:])
			if g == 0 || (g == 1 && h.Flags&flagZeroGrain != 0) {
				continue
			}
			if err := l.grain(fmtGrain(i, j), gtOff+j*4, int64(g)*sector); err != nil {
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

// tableErr classifies an error from a table scan: a read error is about
// the table, anything else is already a fault.
func tableErr(err error, what string) error {
	if _, ok := err.(*span.ReadError); ok {
		return readErr(err, what, 0)
	}
	return err
}
