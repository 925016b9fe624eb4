package vmdk

import (
	"encoding/binary"
	"testing"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/engine/internal/fuzzimg"
)

// The extent fuzz targets feed the header readers and table checks files
// described by fuzzimg (seeded with qemu-img and ESX-layout extents in
// testdata/fuzz/FuzzX, made by engine/internal/fuzzimg/gen) and assert:
//   - no read outside the file, and no more than maxFuzzAlloc allocated;
//   - a refusal is a classified fault naming the structure;
//   - an accepted header has a capacity in (0, maxSectors] and its areas
//     inside the file; accepted tables, walked again naively, put every
//     grain inside the file, after the header and apart from the others.

const maxFuzzAlloc = 64 << 20

// measure runs fn and fails if it read outside im or allocated too much.
func measure(t *testing.T, im *fuzzimg.Image, fn func() error) error {
	t.Helper()
	before := fuzzimg.Allocated()
	err := fn()
	allocated := fuzzimg.Allocated() - before
	if im.Violation != "" {
		t.Fatalf("read outside the file: %s", im.Violation)
	}
	if n := allocated; n > maxFuzzAlloc {
		t.Fatalf("allocated %d MiB for a %d-byte file", n>>20, im.Size)
	}
	if err != nil {
		checkRefusal(t, err)
	}
	return err
}

func checkRefusal(t *testing.T, err error) {
	t.Helper()
	fe, ok := fault.As(err)
	if !ok {
		t.Fatalf("unclassified error: %v", err)
	}
	switch fe.Code {
	case fault.CorruptImage, fault.TruncatedImage:
		for _, fact := range fe.Facts {
			if fact.Label == "Structure" && fact.Value != "" {
				return
			}
		}
		t.Fatalf("%s refusal does not name the structure: %v", fe.Code, err)
	case fault.UnsupportedFormat:
	default:
		t.Fatalf("refusal with code %s: %v", fe.Code, err)
	}
}

// grainSet is the fuzz tests' own record of grains: start offsets, checked
// pairwise for small files.
type grainSet struct {
	t      *testing.T
	size   int64
	min    int64
	starts []int64
}

func (g *grainSet) add(off, n int64) {
	g.t.Helper()
	if off < g.min || off+n > g.size {
		g.t.Fatalf("accepted a grain at %d+%d; grains lie in [%d, %d)", off, n, g.min, g.size)
	}
	g.starts = append(g.starts, off)
}

func (g *grainSet) distinct(n int64) {
	g.t.Helper()
	if len(g.starts) > 4096 {
		return
	}
	for i, a := range g.starts {
		for _, b := range g.starts[i+1:] {
			if a < b+n && b < a+n {
				g.t.Fatalf("accepted overlapping grains at %d and %d (%d bytes each)", a, b, n)
			}
		}
	}
}

func FuzzSparse(f *testing.F) {
	f.Fuzz(func(t *testing.T, size uint32, data []byte) {
		im := fuzzimg.Decode(size, data)
		var h *SparseHeader
		if measure(t, im, func() (err error) { h, err = ReadSparseHeader(im, im.Size); return }) != nil {
			return
		}
		if h.Capacity == 0 || h.Capacity > maxSectors || int64(h.Overhead)*sector > im.Size {
			t.Fatalf("accepted header %+v for a %d-byte file", h, im.Size)
		}
		var desc []byte
		if measure(t, im, func() (err error) { desc, err = h.EmbeddedDescriptor(im); return }) != nil {
			return
		}
		if len(desc) > MaxDescriptorSize {
			t.Fatalf("read a %d-byte descriptor", len(desc))
		}
		ParseDescriptor(desc)
		if measure(t, im, func() error { return h.CheckTables(im, im.Size) }) != nil || im.Size > 8<<20 {
			return
		}
		// Walk the accepted tables again, naively.
		le := binary.LittleEndian
		grainBytes := int64(h.GrainSize) * sector
		g := &grainSet{t: t, size: im.Size, min: int64(h.Overhead) * sector}
		n := h.gdEntries()
		gd := make([]byte, n*4)
		im.ReadAt(gd, int64(h.GDOffset)*sector)
		for i := int64(0); i < n; i++ {
			gtOff := int64(le.Uint32(gd[i*4:])) * sector
			if gtOff == 0 {
				continue
			}
			gt := make([]byte, h.NumGTEsPerGT*4)
			if _, err := im.ReadAt(gt, gtOff); err != nil {
				t.Fatalf("accepted grain table %d at %d outside the file", i, gtOff)
			}
			for j := range int64(h.NumGTEsPerGT) {
				s := le.Uint32(gt[j*4:])
				if s == 0 || s == 1 && h.Flags&flagZeroGrain != 0 {
					continue
				}
				if h.Compressed() {
					g.add(int64(s)*sector, 12)
				} else {
					g.add(int64(s)*sector, grainBytes)
				}
			}
		}
		if h.Compressed() {
			g.distinct(1)
		} else {
			g.distinct(grainBytes)
		}
	})
}

func FuzzCOWD(f *testing.F) {
	f.Fuzz(func(t *testing.T, size uint32, data []byte) {
		im := fuzzimg.Decode(size, data)
		var h *COWDHeader
		if measure(t, im, func() (err error) { h, err = ReadCOWDHeader(im, im.Size); return }) != nil {
			return
		}
		if h.Sectors == 0 || h.GDOffset == 0 {
			t.Fatalf("accepted header %+v", h)
		}
		if measure(t, im, func() error { return h.CheckTables(im, im.Size) }) != nil || im.Size > 8<<20 {
			return
		}
		le := binary.LittleEndian
		grainBytes := int64(h.GrainSize) * sector
		g := &grainSet{t: t, size: im.Size, min: sector}
		gd := make([]byte, int64(h.GDEntries)*4)
		im.ReadAt(gd, int64(h.GDOffset)*sector)
		for i := range int64(h.GDEntries) {
			gtOff := int64(le.Uint32(gd[i*4:])) * sector
			if gtOff == 0 {
				continue
			}
			gt := make([]byte, cowdGTEntries*4)
			if _, err := im.ReadAt(gt, gtOff); err != nil {
				t.Fatalf("accepted grain table %d at %d outside the file", i, gtOff)
			}
			for j := range int64(cowdGTEntries) {
				if s := le.Uint32(gt[j*4:]); s != 0 {
					g.add(int64(s)*sector, grainBytes)
				}
			}
		}
		g.distinct(grainBytes)
	})
}

func FuzzSESparse(f *testing.F) {
	f.Fuzz(func(t *testing.T, size uint32, data []byte) {
		im := fuzzimg.Decode(size, data)
		var h *SESparseHeader
		if measure(t, im, func() (err error) { h, err = ReadSESparseHeader(im, im.Size); return }) != nil {
			return
		}
		if h.Capacity == 0 || h.Capacity > maxSectors || h.GrainSize != 8 {
			t.Fatalf("accepted header %+v", h)
		}
		if measure(t, im, func() error { return h.CheckTables(im, im.Size) }) != nil || im.Size > 8<<20 {
			return
		}
		le := binary.LittleEndian
		g := &grainSet{t: t, size: im.Size, min: int64(h.GrainsOffset) * sector}
		entries := int64(h.GrainDirSize) * sector / 8
		gd := make([]byte, entries*8)
		im.ReadAt(gd, int64(h.GrainDirOffset)*sector)
		for i := range entries {
			e := le.Uint64(gd[i*8:])
			if e == 0 {
				continue
			}
			gtOff := (int64(h.GrainTablesOffset) + int64(e&0xffffffff)*64) * sector
			gt := make([]byte, 64*sector)
			if _, err := im.ReadAt(gt, gtOff); err != nil {
				t.Fatalf("accepted grain table %d at %d outside the file", i, gtOff)
			}
			for j := range int64(len(gt) / 8) {
				if v := le.Uint64(gt[j*8:]); v>>60 == 3 {
					idx := int64((v&0x0fff000000000000)>>48 | (v&0x0000ffffffffffff)<<12)
					g.add((int64(h.GrainsOffset)+idx*8)*sector, 4096)
				}
			}
		}
		g.distinct(4096)
	})
}
