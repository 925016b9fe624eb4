package diskformat

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/internal/testimg"
)

// qemuImage makes a 4 MiB image with qemu-img holding data at 0 and 1 MiB,
// and returns its bytes.
func qemuImage(t *testing.T, format, opts string) []byte {
	t.Helper()
	p := filepath.Join(t.TempDir(), "disk."+format)
	args := []string{"create", "-q", "-f", format}
	if opts != "" {
		args = append(args, "-o", opts)
	}
	if err := testimg.Run("qemu-img", append(args, p, "4M")...); err != nil {
		t.Fatal(err)
	}
	if err := testimg.QemuWrite(p, format, testimg.Layer{{Offset: 0, Length: 4096, Byte: 1}, {Offset: 1 << 20, Length: 4096, Byte: 2}}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// want checks a refusal: its code, the structure it names (as a fact and in
// the message) and, for corruption, the offset fact.
func want(t *testing.T, err error, code fault.Code, structure string) {
	t.Helper()
	fe, ok := fault.As(err)
	if !ok {
		t.Fatalf("got %v, want a %s fault", err, code)
	}
	if fe.Code != code {
		t.Fatalf("code %s (%v), want %s", fe.Code, err, code)
	}
	facts := map[string]string{}
	for _, f := range fe.Facts {
		facts[f.Label] = f.Value
	}
	if !strings.Contains(facts["Structure"], structure) || !strings.Contains(fe.Msg, structure) {
		t.Errorf("structure %q not named: Structure fact %q, message %q", structure, facts["Structure"], fe.Msg)
	}
	if code == fault.CorruptImage {
		off, _, _ := strings.Cut(facts["Offset"], " ")
		if off == "" || !strings.Contains(fe.Msg, off) {
			t.Errorf("offset %q not named: facts %+v, message %q", off, fe.Facts, fe.Msg)
		}
	}
	if code == fault.TruncatedImage && !strings.Contains(fe.Msg, "ends at byte") && !strings.Contains(fe.Msg, "(0 bytes)") {
		t.Errorf("truncation without the offset: %q", fe.Msg)
	}
}

func inspect(f Format, b []byte) (*Info, error) {
	return Inspect(f, bytes.NewReader(b), int64(len(b)))
}

var be, le = binary.BigEndian, binary.LittleEndian

// qcow2Tables locates the tables of an image qemu-img made.
func qcow2Tables(b []byte) (l1, rt, rb, l2 int64) {
	l1, rt = int64(be.Uint64(b[40:])), int64(be.Uint64(b[48:]))
	return l1, rt, int64(be.Uint64(b[rt:])), int64(be.Uint64(b[l1:]) & qcow2OffMask)
}

func TestCorruptQcow2Refused(t *testing.T) {
	base := qemuImage(t, "qcow2", "")
	if _, err := inspect(QCOW2, base); err != nil {
		t.Fatalf("the unmodified image is refused: %v", err)
	}
	cases := []struct {
		name      string
		patch     func(b []byte)
		code      fault.Code
		structure string
	}{
		{"refcount table beyond the end", func(b []byte) { be.PutUint64(b[48:], 1<<40) }, fault.TruncatedImage, "qcow2 refcount table"},
		{"refcount table on the header", func(b []byte) { be.PutUint64(b[48:], 0) }, fault.CorruptImage, "qcow2 refcount table"},
		{"refcount table on the L1 table", func(b []byte) {
			l1, _, _, _ := qcow2Tables(b)
			be.PutUint64(b[48:], uint64(l1))
		}, fault.CorruptImage, "qcow2 refcount table"},
		{"refcount table too large", func(b []byte) { be.PutUint32(b[56:], 1<<20) }, fault.CorruptImage, "qcow2 refcount table"},
		{"refcount block beyond the end", func(b []byte) {
			_, rt, _, _ := qcow2Tables(b)
			be.PutUint64(b[rt:], 1<<40)
		}, fault.TruncatedImage, "qcow2 refcount block 0"},
		{"refcount block not on a cluster", func(b []byte) {
			_, rt, rb, _ := qcow2Tables(b)
			be.PutUint64(b[rt:], uint64(rb+512))
		}, fault.CorruptImage, "qcow2 refcount table"},
		{"refcount block on the L1 table", func(b []byte) {
			l1, rt, _, _ := qcow2Tables(b)
			be.PutUint64(b[rt:], uint64(l1))
		}, fault.CorruptImage, "qcow2 refcount block 0"},
		{"refcount block on an L2 table", func(b []byte) {
			_, rt, _, l2 := qcow2Tables(b)
			be.PutUint64(b[rt:], uint64(l2))
		}, fault.CorruptImage, "qcow2 L2 table 0"},
		{"refcount table entry with reserved bits", func(b []byte) {
			_, rt, rb, _ := qcow2Tables(b)
			be.PutUint64(b[rt:], uint64(rb)|1)
		}, fault.CorruptImage, "qcow2 refcount table"},
		{"refcount order 7", func(b []byte) { be.PutUint32(b[96:], 7) }, fault.CorruptImage, "qcow2 header"},
		{"data cluster on the refcount table", func(b []byte) {
			_, rt, _, l2 := qcow2Tables(b)
			be.PutUint64(b[l2:], uint64(rt)|1<<63)
		}, fault.CorruptImage, "qcow2 L2 table 0 entry 0"},
		{"two L2 entries share a cluster", func(b []byte) {
			_, _, _, l2 := qcow2Tables(b)
			copy(b[l2+8*16:], b[l2:l2+8]) // 1 MiB is entry 16 of 64 KiB clusters
		}, fault.CorruptImage, "qcow2 L2 table 0 entry 16"},
		{"negative virtual size", func(b []byte) { be.PutUint64(b[24:], 1<<63) }, fault.CorruptImage, "qcow2 virtual size"},
		{"virtual size beyond the L1 table", func(b []byte) { be.PutUint64(b[24:], 1<<40) }, fault.CorruptImage, "qcow2 L1 table"},
		{"L1 table at a negative offset", func(b []byte) { be.PutUint64(b[40:], 1<<63) }, fault.CorruptImage, "qcow2 L1 table"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := bytes.Clone(base)
			c.patch(b)
			_, err := inspect(QCOW2, b)
			want(t, err, c.code, c.structure)
		})
	}
}

// fixVHDChecksum recomputes the footer checksum after a patch.
func fixVHDChecksum(footer []byte) { be.PutUint32(footer[64:], vhdChecksum(footer, 64)) }

func TestCorruptVHDRefused(t *testing.T) {
	fixed := qemuImage(t, "vpc", "subformat=fixed")
	dynamic := qemuImage(t, "vpc", "")
	for _, b := range [][]byte{fixed, dynamic} {
		if _, err := inspect(VHD, b); err != nil {
			t.Fatalf("the unmodified image is refused: %v", err)
		}
	}
	setSize := func(v uint64) func(b []byte) {
		return func(b []byte) {
			f := b[len(b)-512:]
			be.PutUint64(f[48:], v)
			fixVHDChecksum(f)
		}
	}
	dyn := func(b []byte) []byte { return b[be.Uint64(b[len(b)-512+16:]):] }
	bat := func(b []byte) int64 { return int64(be.Uint64(dyn(b)[16:])) }
	cases := []struct {
		name      string
		base      []byte
		patch     func(b []byte)
		code      fault.Code
		structure string
	}{
		{"fixed, negative size", fixed, setSize(1 << 63), fault.CorruptImage, "VHD virtual size"},
		{"fixed, size -512", fixed, setSize(^uint64(511)), fault.CorruptImage, "VHD virtual size"},
		{"fixed, larger than the file", fixed, setSize(1 << 40), fault.TruncatedImage, "fixed VHD"},
		{"fixed, not whole sectors", fixed, setSize(4<<20 + 100), fault.CorruptImage, "VHD footer"},
		{"fixed, empty", fixed, setSize(0), fault.CorruptImage, "VHD virtual size"},
		{"dynamic, negative size", dynamic, setSize(1 << 63), fault.CorruptImage, "VHD virtual size"},
		{"dynamic, larger than its block table", dynamic, setSize(1 << 40), fault.CorruptImage, "VHD dynamic header"},
		{"dynamic, block on the block table", dynamic, func(b []byte) {
			be.PutUint32(b[bat(b):], uint32(bat(b)/512))
		}, fault.CorruptImage, "VHD block 0"},
		{"dynamic, two blocks share their sectors", dynamic, func(b []byte) {
			copy(b[bat(b)+4:], b[bat(b):bat(b)+4])
		}, fault.CorruptImage, "VHD block 1"},
		{"dynamic, block table at a negative offset", dynamic, func(b []byte) {
			be.PutUint64(dyn(b)[16:], 1<<63)
		}, fault.CorruptImage, "VHD dynamic header"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := bytes.Clone(c.base)
			c.patch(b)
			_, err := inspect(VHD, b)
			want(t, err, c.code, c.structure)
		})
	}
}

// vhdxItem finds a metadata item of an image qemu-img made.
func vhdxItem(b []byte, id []byte) int64 {
	var meta int64
	rt := b[192<<10:]
	for i := 0; i < int(le.Uint32(rt[8:])); i++ {
		e := rt[16+i*32:]
		if bytes.Equal(e[:16], vhdxRegionMetadata) {
			meta = int64(le.Uint64(e[16:]))
		}
	}
	for i := 0; i < int(le.Uint16(b[meta+10:])); i++ {
		e := b[meta+32+int64(i)*32:]
		if bytes.Equal(e[:16], id) {
			return meta + int64(le.Uint32(e[16:]))
		}
	}
	panic("no such VHDX metadata item")
}

func TestCorruptVHDXRefused(t *testing.T) {
	base := qemuImage(t, "vhdx", "")
	if _, err := inspect(VHDX, base); err != nil {
		t.Fatalf("the unmodified image is refused: %v", err)
	}
	setSize := func(v uint64) func(b []byte) {
		return func(b []byte) { le.PutUint64(b[vhdxItem(b, vhdxVirtualSize):], v) }
	}
	cases := []struct {
		name      string
		patch     func(b []byte)
		code      fault.Code
		structure string
	}{
		// The reported panic: the block count of a size near 2^63
		// overflowed, and a negative table length reached make().
		{"virtual size 2^63-1", setSize(1<<63 - 1), fault.CorruptImage, "VHDX virtual size"},
		{"huge virtual size", setSize(1 << 62), fault.CorruptImage, "VHDX virtual size"},
		{"negative virtual size", setSize(1 << 63), fault.CorruptImage, "VHDX virtual size"},
		{"largest virtual size", setSize(^uint64(0)), fault.CorruptImage, "VHDX virtual size"},
		{"virtual size not whole sectors", setSize(4<<20 + 1), fault.CorruptImage, "VHDX virtual size"},
		{"block size not a power of two", func(b []byte) { le.PutUint32(b[vhdxItem(b, vhdxFileParams):], 3<<20) }, fault.CorruptImage, "VHDX file parameters"},
		{"payload block on the headers", func(b []byte) {
			bat := findRegion(b, vhdxRegionBAT)
			le.PutUint64(b[bat:], 6) // fully present at offset 0
		}, fault.CorruptImage, "VHDX payload block 0"},
		{"payload block on the metadata", func(b []byte) {
			bat := findRegion(b, vhdxRegionBAT)
			le.PutUint64(b[bat:], uint64(findRegion(b, vhdxRegionMetadata))|6) // MiB-aligned: the offset is its own field
		}, fault.CorruptImage, "VHDX payload block 0"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := bytes.Clone(base)
			c.patch(b)
			_, err := inspect(VHDX, b)
			want(t, err, c.code, c.structure)
		})
	}
}

func findRegion(b []byte, id []byte) int64 {
	rt := b[192<<10:]
	for i := 0; i < int(le.Uint32(rt[8:])); i++ {
		if e := rt[16+i*32:]; bytes.Equal(e[:16], id) {
			return int64(le.Uint64(e[16:]))
		}
	}
	panic("no such VHDX region")
}

func TestCorruptVDIRefused(t *testing.T) {
	base := qemuImage(t, "vdi", "")
	if _, err := inspect(VDI, base); err != nil {
		t.Fatalf("the unmodified image is refused: %v", err)
	}
	bmap := func(b []byte) []byte { return b[le.Uint32(b[0x154:]):] }
	cases := []struct {
		name      string
		patch     func(b []byte)
		code      fault.Code
		structure string
	}{
		{"two entries name one block", func(b []byte) { copy(bmap(b)[1*4:], bmap(b)[:4]) }, fault.CorruptImage, "VDI block map"},
		{"entry past the allocated blocks", func(b []byte) { le.PutUint32(bmap(b)[2*4:], 7) }, fault.CorruptImage, "VDI block map"},
		{"huge virtual size", func(b []byte) { le.PutUint64(b[0x170:], 1<<62) }, fault.CorruptImage, "VDI virtual size"},
		{"block map on the header", func(b []byte) { le.PutUint32(b[0x154:], 0) }, fault.CorruptImage, "VDI block map"},
		{"more blocks allocated than exist", func(b []byte) { le.PutUint32(b[0x184:], 1000) }, fault.CorruptImage, "VDI header"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := bytes.Clone(base)
			c.patch(b)
			_, err := inspect(VDI, b)
			want(t, err, c.code, c.structure)
		})
	}
}

func TestEmptyRawRefused(t *testing.T) {
	_, err := inspect(Raw, nil)
	want(t, err, fault.TruncatedImage, "raw disk")
	if fe, _ := fault.As(err); !strings.Contains(fe.Msg, "empty") {
		t.Errorf("message does not say the file is empty: %q", fe.Msg)
	}
	if info, err := inspect(Raw, make([]byte, 512)); err != nil || info.VirtualSize != 512 {
		t.Errorf("a one-sector raw disk: %+v, %v", info, err)
	}
}

// TestBoundsStated checks the bounds the docs state are the ones enforced.
func TestBoundsStated(t *testing.T) {
	doc, err := os.ReadFile("../../templates/resources/disk_conversion.md.tmpl")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{fmt.Sprintf("%d TiB", MaxVirtualSize>>40), fmt.Sprintf("%d MiB", maxTableRead>>20)} {
		if !bytes.Contains(doc, []byte(s)) {
			t.Errorf("the docs do not state the bound %q", s)
		}
	}
}
