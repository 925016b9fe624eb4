package vmdk

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/internal/testimg"
)

var le = binary.LittleEndian

// written is what every test extent holds: one grain at 0 and one at 1 MiB.
var written = testimg.Layer{{Offset: 0, Length: 4096, Byte: 1}, {Offset: 1 << 20, Length: 4096, Byte: 2}}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// want checks a refusal: its code, and that it names the structure (fact
// and message) and, for corruption, the offset.
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
	if code == fault.TruncatedImage && !strings.Contains(fe.Msg, "ends at byte") {
		t.Errorf("truncation without the offset: %q", fe.Msg)
	}
}

func checkSparse(b []byte) error {
	r := bytes.NewReader(b)
	h, err := ReadSparseHeader(r, int64(len(b)))
	if err != nil {
		return err
	}
	return h.CheckTables(r, int64(len(b)))
}

// kdmv locates the first grain table of a hosted sparse extent and the
// grain directory.
func kdmv(b []byte) (gd, gt int64) {
	gd = int64(le.Uint64(b[56:])) * sector
	return gd, int64(le.Uint32(b[gd:])) * sector
}

func TestCorruptSparseRefused(t *testing.T) {
	p := filepath.Join(t.TempDir(), "disk.vmdk")
	if err := testimg.Run("qemu-img", "create", "-q", "-f", "vmdk", p, "4M"); err != nil {
		t.Fatal(err)
	}
	if err := testimg.QemuWrite(p, "vmdk", written); err != nil {
		t.Fatal(err)
	}
	base := readFile(t, p)
	if err := checkSparse(base); err != nil {
		t.Fatalf("the unmodified extent is refused: %v", err)
	}
	// With 64 KiB grains, 1 MiB is entry 16 of grain table 0.
	entry := func(b []byte, j int64) []byte { _, gt := kdmv(b); return b[gt+j*4:] }
	cases := []struct {
		name      string
		patch     func(b []byte)
		code      fault.Code
		structure string
	}{
		{"grain on the embedded descriptor", func(b []byte) { le.PutUint32(entry(b, 0), 1) }, fault.CorruptImage, "grain table 0 entry 0"},
		{"grain on the grain directory", func(b []byte) {
			gd, _ := kdmv(b)
			le.PutUint32(entry(b, 0), uint32(gd/sector))
		}, fault.CorruptImage, "grain table 0 entry 0"},
		{"grain on its own grain table", func(b []byte) {
			_, gt := kdmv(b)
			le.PutUint32(entry(b, 16), uint32(gt/sector))
		}, fault.CorruptImage, "grain table 0 entry 16"},
		{"two entries share a grain", func(b []byte) { copy(entry(b, 16), entry(b, 0)[:4]) }, fault.CorruptImage, "grain table 0 entry 16"},
		{"grains overlap by half", func(b []byte) {
			le.PutUint32(entry(b, 16), le.Uint32(entry(b, 0))+64)
		}, fault.CorruptImage, "grain"},
		{"grain table on the grain directory", func(b []byte) {
			gd, _ := kdmv(b)
			le.PutUint32(b[gd:], uint32(gd/sector))
		}, fault.CorruptImage, "grain table 0"},
		{"grain past the end", func(b []byte) { le.PutUint32(entry(b, 16), uint32(len(b)/sector)) }, fault.TruncatedImage, "grain table 0 entry 16"},
		{"overhead of 2^55 sectors", func(b []byte) { le.PutUint64(b[64:], 1<<55) }, fault.CorruptImage, "the metadata area before the first grain"},
		{"descriptor of 2^55 sectors", func(b []byte) { le.PutUint64(b[36:], 1<<55) }, fault.CorruptImage, "the embedded descriptor"},
		{"grain directory at sector 2^62", func(b []byte) { le.PutUint64(b[56:], 1<<62) }, fault.CorruptImage, "the grain directory"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := bytes.Clone(base)
			c.patch(b)
			want(t, checkSparse(b), c.code, c.structure)
		})
	}
}

// TestCorruptStreamRefused covers VMware's stream layout, where the grain
// tables follow the grains, so only the table regions (not the overhead)
// keep a grain out of them.
func TestCorruptStreamRefused(t *testing.T) {
	p := filepath.Join(t.TempDir(), "stream.vmdk")
	if err := testimg.StreamOptimized(p, 4<<20, written); err != nil {
		t.Fatal(err)
	}
	base := readFile(t, p)
	if err := checkSparse(base); err != nil {
		t.Fatalf("the unmodified extent is refused: %v", err)
	}
	footer := func(b []byte) []byte { return b[len(b)-2*sector:] }
	cases := []struct {
		name      string
		patch     func(b []byte, gd, gt int64)
		structure string
	}{
		{"grain on a grain table", func(b []byte, gd, gt int64) { le.PutUint32(b[gt+16*4:], uint32(gt/sector)) }, "grain table 0 entry 16"},
		{"grain on the footer", func(b []byte, gd, gt int64) { le.PutUint32(b[gt+16*4:], uint32(len(b)/sector-2)) }, "grain table 0 entry 16"},
		{"two entries share a grain", func(b []byte, gd, gt int64) { copy(b[gt+16*4:], b[gt:gt+4]) }, "grain"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := bytes.Clone(base)
			gd := int64(le.Uint64(footer(b)[56:])) * sector
			c.patch(b, gd, int64(le.Uint32(b[gd:]))*sector)
			want(t, checkSparse(b), fault.CorruptImage, c.structure)
		})
	}
}

func TestCorruptCOWDRefused(t *testing.T) {
	dir := t.TempDir()
	if _, err := testimg.VMFSSparse(dir, "snap", "base.vmdk", 2, 1, 4<<20, 1, written); err != nil {
		t.Fatal(err)
	}
	base := readFile(t, filepath.Join(dir, "snap-delta.vmdk"))
	check := func(b []byte) error {
		h, err := ReadCOWDHeader(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return err
		}
		return h.CheckTables(bytes.NewReader(b), int64(len(b)))
	}
	if err := check(base); err != nil {
		t.Fatalf("the unmodified extent is refused: %v", err)
	}
	gt := func(b []byte) int64 { return int64(le.Uint32(b[int64(le.Uint32(b[20:]))*sector:])) * sector }
	cases := []struct {
		name      string
		patch     func(b []byte)
		structure string
	}{
		{"grain on the header", func(b []byte) { le.PutUint32(b[gt(b):], 1) }, "grain table 0 entry 0"},
		{"grain on the grain directory", func(b []byte) { le.PutUint32(b[gt(b):], le.Uint32(b[20:])) }, "grain table 0 entry 0"},
		{"two entries share a grain", func(b []byte) { copy(b[gt(b)+4:], b[gt(b):gt(b)+4]) }, "grain table 0 entry 1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := bytes.Clone(base)
			c.patch(b)
			want(t, check(b), fault.CorruptImage, c.structure)
		})
	}
}

func TestCorruptSESparseRefused(t *testing.T) {
	dir := t.TempDir()
	if _, err := testimg.SESparse(dir, "snap", "base.vmdk", 2, 1, 4<<20, written); err != nil {
		t.Fatal(err)
	}
	base := readFile(t, filepath.Join(dir, "snap-sesparse.vmdk"))
	check := func(b []byte) error {
		h, err := ReadSESparseHeader(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return err
		}
		return h.CheckTables(bytes.NewReader(b), int64(len(b)))
	}
	if err := check(base); err != nil {
		t.Fatalf("the unmodified extent is refused: %v", err)
	}
	u := func(b []byte, i int) int64 { return int64(le.Uint64(b[i*8:])) }
	gt := func(b []byte) int64 { return u(b, 18) * sector }
	cases := []struct {
		name      string
		patch     func(b []byte) []byte
		code      fault.Code
		structure string
	}{
		// The grain area is the header's 25th word: a check reading the
		// 23rd (the backmap) put every grain near the start of the file.
		{"last grain cut off", func(b []byte) []byte { return b[:len(b)-sector] }, fault.TruncatedImage, "seSparse grain"},
		{"two entries share a grain", func(b []byte) []byte {
			// Grain 0 of the disk is entry 0; 1 MiB is entry 256 of table 0.
			copy(b[gt(b)+256*8:], b[gt(b):gt(b)+8])
			return b
		}, fault.CorruptImage, "seSparse grain table 0"},
		{"grain area on the grain tables", func(b []byte) []byte {
			le.PutUint64(b[24*8:], uint64(u(b, 18)))
			return b
		}, fault.CorruptImage, "the seSparse grains"},
		{"grain area at sector 2^60", func(b []byte) []byte {
			le.PutUint64(b[24*8:], 1<<60)
			return b
		}, fault.CorruptImage, "the seSparse grains"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want(t, check(c.patch(bytes.Clone(base))), c.code, c.structure)
		})
	}
}
