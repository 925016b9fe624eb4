package diskformat

import (
	"encoding/binary"
	"testing"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/engine/internal/fuzzimg"
)

// The fuzz targets feed the parsers files described by fuzzimg (seeded
// with real qemu-img images in testdata/fuzz/FuzzX, made by
// engine/internal/fuzzimg/gen) and assert properties of every outcome, not
// only the absence of a panic:
//   - no read outside the file, and no more than maxFuzzAlloc allocated;
//   - a refusal is a classified fault, and a corrupt or truncated image
//     names the structure;
//   - an accepted image has a virtual size in (0, MaxVirtualSize], and an
//     independent, naive walk of its tables finds every allocated cluster
//     or block inside the file and none used twice.

const maxFuzzAlloc = 64 << 20

// inspectFuzz runs Inspect on a fuzz input and checks the properties every
// format shares. It returns the info when the image was accepted.
func inspectFuzz(t *testing.T, f Format, size uint32, data []byte) (*Info, *fuzzimg.Image) {
	im := fuzzimg.Decode(size, data)
	before := fuzzimg.Allocated()
	info, err := Inspect(f, im, im.Size)
	allocated := fuzzimg.Allocated() - before
	if im.Violation != "" {
		t.Fatalf("the parser read outside the file: %s", im.Violation)
	}
	if n := allocated; n > maxFuzzAlloc {
		t.Fatalf("the parser allocated %d MiB for a %d-byte file", n>>20, im.Size)
	}
	if err != nil {
		checkRefusal(t, err)
		return nil, im
	}
	if info.VirtualSize <= 0 || info.VirtualSize > MaxVirtualSize {
		t.Fatalf("accepted a %s image of virtual size %d", f, info.VirtualSize)
	}
	return info, im
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

// claims is the fuzz tests' own record of which units of a file are used:
// a plain map, where the parser uses a bitmap.
type claims map[int64]string

func (c claims) claim(t *testing.T, what string, off, n, unit, size int64) {
	t.Helper()
	if off < 0 || n < 0 || off+n > size {
		t.Fatalf("accepted image has %s at %d+%d outside the %d-byte file", what, off, n, size)
	}
	for u := off / unit; u*unit < off+n; u++ {
		if prev, dup := c[u]; dup {
			t.Fatalf("accepted image uses unit %d twice: %s and %s", u, prev, what)
		}
		c[u] = what
	}
}

func FuzzDetect(f *testing.F) {
	f.Fuzz(func(t *testing.T, size uint32, data []byte) {
		im := fuzzimg.Decode(size, data)
		d, ok, err := DetectReader(im, im.Size)
		if im.Violation != "" {
			t.Fatalf("Detect read outside the file: %s", im.Violation)
		}
		if err != nil {
			t.Fatalf("Detect failed on a readable file: %v", err)
		}
		if !ok {
			return
		}
		again, ok2, _ := DetectReader(im, im.Size)
		if !ok2 || again != d {
			t.Fatalf("Detect is not deterministic: %+v then %+v", d, again)
		}
		known := false
		for _, in := range Inputs {
			known = known || in == d.Format
		}
		if !known || d.Evidence == "" {
			t.Fatalf("Detect returned %+v", d)
		}
		if d.Kind == KindWhole && d.Format != Raw {
			inspectFuzz(t, d.Format, size, data)
		}
	})
}

func FuzzQcow2(f *testing.F) {
	f.Fuzz(func(t *testing.T, size uint32, data []byte) {
		info, im := inspectFuzz(t, QCOW2, size, data)
		if info == nil {
			return
		}
		if len(info.Backing) > 1023 {
			t.Fatalf("accepted a backing name of %d bytes", len(info.Backing))
		}
		if im.Size <= 8<<20 {
			naiveQcow2(t, im)
		}
	})
}

// naiveQcow2 walks the active L1 and L2 tables of an accepted qcow2 image
// and checks every table and uncompressed data cluster against the header,
// the L1 and refcount tables and each other.
func naiveQcow2(t *testing.T, im *fuzzimg.Image) {
	be := binary.BigEndian
	read := func(off, n int64) []byte {
		b := make([]byte, n)
		if _, err := im.ReadAt(b, off); err != nil {
			t.Fatalf("accepted image: cannot read %d bytes at %d", n, off)
		}
		return b
	}
	h := read(0, 104)
	cluster := int64(1) << be.Uint32(h[20:])
	version := be.Uint32(h[4:])
	entry := int64(8)
	if version == 3 && be.Uint64(h[72:])&0x10 != 0 {
		entry = 16
	}
	c := claims{}
	c.claim(t, "header", 0, cluster, cluster, im.Size)
	l1Size, l1Off := int64(be.Uint32(h[36:])), int64(be.Uint64(h[40:]))
	c.claim(t, "L1 table", l1Off, l1Size*8, cluster, im.Size)
	c.claim(t, "refcount table", int64(be.Uint64(h[48:])), int64(be.Uint32(h[56:]))*cluster, cluster, im.Size)
	l1 := read(l1Off, l1Size*8)
	for i := int64(0); i < l1Size; i++ {
		l2Off := int64(be.Uint64(l1[i*8:]) & 0x00fffffffffffe00)
		if l2Off == 0 {
			continue
		}
		c.claim(t, "L2 table", l2Off, cluster, cluster, im.Size)
		l2 := read(l2Off, cluster)
		for j := int64(0); j+entry <= cluster; j += entry {
			e := be.Uint64(l2[j:])
			off := int64(e & 0x00fffffffffffe00)
			if e&(1<<62) != 0 || off == 0 {
				continue
			}
			if off%cluster != 0 {
				t.Fatalf("accepted an unaligned data cluster %#x", off)
			}
			c.claim(t, "data cluster", off, cluster, cluster, im.Size)
		}
	}
}

func FuzzVHD(f *testing.F) {
	f.Fuzz(func(t *testing.T, size uint32, data []byte) {
		info, im := inspectFuzz(t, VHD, size, data)
		if info == nil {
			return
		}
		footer := make([]byte, 512)
		im.ReadAt(footer, im.Size-512)
		be := binary.BigEndian
		if info.VirtualSize%512 != 0 || (info.VirtualSize+512 > im.Size && be.Uint32(footer[60:]) == 2) {
			t.Fatalf("accepted a fixed VHD of %d bytes in a %d-byte file", info.VirtualSize, im.Size)
		}
		if be.Uint32(footer[60:]) != 3 {
			return
		}
		dyn := make([]byte, 1024)
		im.ReadAt(dyn, int64(be.Uint64(footer[16:])))
		batOff, entries, block := int64(be.Uint64(dyn[16:])), int64(be.Uint32(dyn[28:])), int64(be.Uint32(dyn[32:]))
		if entries*block < info.VirtualSize {
			t.Fatalf("accepted a VHD whose %d blocks of %d bytes do not cover %d", entries, block, info.VirtualSize)
		}
		bat := make([]byte, entries*4)
		im.ReadAt(bat, batOff)
		bitmap := ((block/512+7)/8 + 511) &^ 511
		c := claims{}
		c.claim(t, "footer copy", 0, 512, 512, im.Size)
		c.claim(t, "footer", im.Size-512, 512, 512, im.Size)
		for i := int64(0); i < entries; i++ {
			if s := be.Uint32(bat[i*4:]); s != 0xffffffff {
				c.claim(t, "block", int64(s)*512, bitmap+block, 512, im.Size)
			}
		}
	})
}

func FuzzVHDX(f *testing.F) {
	f.Fuzz(func(t *testing.T, size uint32, data []byte) {
		info, _ := inspectFuzz(t, VHDX, size, data)
		if info != nil && info.VirtualSize%512 != 0 {
			t.Fatalf("accepted a VHDX of %d bytes, not whole sectors", info.VirtualSize)
		}
	})
}

func FuzzVDI(f *testing.F) { f.Fuzz(fuzzVDIBody) }

func fuzzVDIBody(t *testing.T, size uint32, data []byte) {
	{
		info, im := inspectFuzz(t, VDI, size, data)
		if info == nil {
			return
		}
		le := binary.LittleEndian
		h := make([]byte, 512)
		im.ReadAt(h, 0)
		bmapOff, dataOff := int64(le.Uint32(h[0x154:])), int64(le.Uint32(h[0x158:]))
		blocks, allocated := int64(le.Uint32(h[0x180:])), int64(le.Uint32(h[0x184:]))
		if blocks*vdiBlock < info.VirtualSize {
			t.Fatalf("accepted a VDI whose %d blocks do not cover %d bytes", blocks, info.VirtualSize)
		}
		if blocks > 1<<16 {
			return
		}
		bmap := make([]byte, blocks*4)
		im.ReadAt(bmap, bmapOff)
		c := claims{}
		for i := int64(0); i < blocks; i++ {
			b := int64(le.Uint32(bmap[i*4:]))
			if b >= vdiZero {
				continue
			}
			if end := dataOff + (b+1)*vdiBlock; end > im.Size {
				t.Fatalf("accepted block %d ending at %d in a %d-byte file", b, end, im.Size)
			}
			// Blocks are numbered: the number is the unit.
			c.claim(t, "block", b, 1, 1, allocated)
		}
	}
}
