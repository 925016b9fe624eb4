package engine_test

import (
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmconv/terraform-provider-vmconv/engine"
	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/internal/testimg"
)

// patchFile rewrites a file with fn applied to its bytes.
func patchFile(t *testing.T, p string, fn func(b []byte) []byte) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, fn(b), 0o644); err != nil {
		t.Fatal(err)
	}
}

// qemuSource makes a 4 MiB image with qemu-img holding data at 0 and 1 MiB.
func qemuSource(t *testing.T, dir, name, format string, opts ...string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := testimg.Run("qemu-img", append(append([]string{"create", "-q", "-f", format}, opts...), p, "4M")...); err != nil {
		t.Fatal(err)
	}
	if err := testimg.QemuWrite(p, format, testimg.Layer{{Offset: 0, Length: 4096, Byte: 1}, {Offset: 1 << 20, Length: 4096, Byte: 2}}); err != nil {
		t.Fatal(err)
	}
	return p
}

var (
	le = binary.LittleEndian
	be = binary.BigEndian
)

// TestPlanRefusesCorruptImages plans a conversion of each kind of corrupt
// image that used to be accepted, and checks the plan refuses it naming the
// damaged file, writes nothing at the output path and leaves the source as
// it was.
func TestPlanRefusesCorruptImages(t *testing.T) {
	// kdmvEntry is grain table 0 entry j of a hosted sparse VMDK.
	kdmvEntry := func(b []byte, j int) []byte {
		gd := le.Uint64(b[56:]) * 512
		return b[uint64(le.Uint32(b[gd:]))*512+uint64(j)*4:]
	}
	cases := []struct {
		name string
		// make builds the source in dir and returns the path to plan and
		// the file the refusal must name.
		make   func(t *testing.T, dir string) (src, bad string)
		format string
		code   fault.Code
		msg    string
	}{
		{"vmdk grain table entry pointing into the header", func(t *testing.T, dir string) (string, string) {
			p := qemuSource(t, dir, "disk.vmdk", "vmdk")
			patchFile(t, p, func(b []byte) []byte { le.PutUint32(kdmvEntry(b, 0), 1); return b })
			return p, p
		}, "", fault.CorruptImage, "grain table 0 entry 0"},
		{"vmdk grains overlapping", func(t *testing.T, dir string) (string, string) {
			p := qemuSource(t, dir, "disk.vmdk", "vmdk")
			patchFile(t, p, func(b []byte) []byte { copy(kdmvEntry(b, 16), kdmvEntry(b, 0)[:4]); return b })
			return p, p
		}, "", fault.CorruptImage, "grain table 0 entry 16"},
		{"vmfsSparse extent grain pointing into its header", func(t *testing.T, dir string) (string, string) {
			if _, err := testimg.VMFSFlat(dir, "base", 1, 4<<20, nil); err != nil {
				t.Fatal(err)
			}
			p, err := testimg.VMFSSparse(dir, "snap", "base.vmdk", 2, 1, 4<<20, 1, testimg.Layer{{Offset: 0, Length: 512, Byte: 3}})
			if err != nil {
				t.Fatal(err)
			}
			delta := filepath.Join(dir, "snap-delta.vmdk")
			patchFile(t, delta, func(b []byte) []byte {
				gt := le.Uint32(b[le.Uint32(b[20:])*512:]) * 512
				le.PutUint32(b[gt:], 2)
				return b
			})
			return p, delta
		}, "", fault.CorruptImage, "grain table 0 entry 0"},
		{"qcow2 refcount block on the L1 table", func(t *testing.T, dir string) (string, string) {
			p := qemuSource(t, dir, "disk.qcow2", "qcow2")
			patchFile(t, p, func(b []byte) []byte { copy(b[be.Uint64(b[48:]):], b[40:48]); return b })
			return p, p
		}, "", fault.CorruptImage, "qcow2 refcount block 0"},
		{"qcow2 refcount table past the end", func(t *testing.T, dir string) (string, string) {
			p := qemuSource(t, dir, "disk.qcow2", "qcow2")
			patchFile(t, p, func(b []byte) []byte { be.PutUint64(b[48:], 1<<30); return b })
			return p, p
		}, "", fault.TruncatedImage, "qcow2 refcount table"},
		{"qcow2 refcounts that only qemu-img check sees", func(t *testing.T, dir string) (string, string) {
			p := qemuSource(t, dir, "disk.qcow2", "qcow2")
			// The first data cluster is in use but counted zero times.
			patchFile(t, p, func(b []byte) []byte {
				rb := be.Uint64(b[be.Uint64(b[48:]):])
				be.PutUint16(b[rb+5*2:], 0)
				return b
			})
			return p, p
		}, "", fault.CorruptImage, "qemu-img check found"},
		{"fixed VHD with a negative size", func(t *testing.T, dir string) (string, string) {
			p := qemuSource(t, dir, "disk.vhd", "vpc", "-o", "subformat=fixed")
			patchFile(t, p, func(b []byte) []byte {
				f := b[len(b)-512:]
				be.PutUint64(f[48:], 1<<63)
				var s uint32
				be.PutUint32(f[64:], 0)
				for _, c := range f {
					s += uint32(c)
				}
				be.PutUint32(f[64:], ^s)
				return b
			})
			return p, p
		}, "", fault.CorruptImage, "VHD virtual size"},
		{"empty file declared raw", func(t *testing.T, dir string) (string, string) {
			p := filepath.Join(dir, "disk.img")
			if err := os.WriteFile(p, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			return p, p
		}, "raw", fault.TruncatedImage, "empty"},
	}
	e := newEngine(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src, out := t.TempDir(), t.TempDir()
			head, bad := c.make(t, src)
			before := sumDir(t, src)
			outPath := filepath.Join(out, "disk.qcow2")
			_, err := e.Plan(context.Background(), engine.Request{
				Source: engine.SourceSpec{Path: head, Format: c.format},
				Output: engine.OutputSpec{Path: outPath, Format: "qcow2"},
			}, engine.PlanOptions{})
			fe, ok := fault.As(err)
			if !ok || fe.Code != c.code {
				t.Fatalf("plan: %v, want a %s fault", err, c.code)
			}
			if fe.File != bad {
				t.Errorf("the refusal names %q, want %q", fe.File, bad)
			}
			if text := fe.Msg + fmtFacts(fe); !strings.Contains(text, c.msg) {
				t.Errorf("the refusal %q does not say %q", text, c.msg)
			}
			if entries, _ := os.ReadDir(out); len(entries) != 0 {
				t.Errorf("the plan wrote into the output folder: %v", entries)
			}
			if !equalMaps(before, sumDir(t, src)) {
				t.Error("the source changed")
			}
		})
	}
}

func fmtFacts(fe *fault.Error) string {
	var b strings.Builder
	for _, f := range fe.Facts {
		b.WriteString("\n" + f.Label + ": " + f.Value)
	}
	return b.String()
}

// TestPlanWarnsOfLeakedClusters: leaked clusters are harmless, so qemu-img
// check's finding is a warning, not a refusal.
func TestPlanWarnsOfLeakedClusters(t *testing.T) {
	src, out := t.TempDir(), t.TempDir()
	p := qemuSource(t, src, "disk.qcow2", "qcow2")
	patchFile(t, p, func(b []byte) []byte {
		rb := be.Uint64(b[be.Uint64(b[48:]):])
		be.PutUint16(b[rb+1*2:], 2) // the refcount table, counted twice
		return b
	})
	plan, err := newEngine(t).Plan(context.Background(), engine.Request{
		Source: engine.SourceSpec{Path: p},
		Output: engine.OutputSpec{Path: filepath.Join(out, "disk.qcow2"), Format: "qcow2"},
	}, engine.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(plan.Warnings, "\n"), "leaked clusters") {
		t.Errorf("no warning about the leak: %q", plan.Warnings)
	}
}

// TestPlanChecksEveryKind plans sound sources of every kind qemu-img check
// runs on (and some it does not), so the check is known to pass them:
// qcow2 over a backing file, VDI, VHDX, VHD, a hosted sparse chain, VMware's
// stream layout, split extents, and vmfsSparse and seSparse snapshots.
func TestPlanChecksEveryKind(t *testing.T) {
	data := testimg.Layer{{Offset: 0, Length: 4096, Byte: 1}, {Offset: 1 << 20, Length: 4096, Byte: 2}}
	cases := []struct {
		name string
		make func(t *testing.T, dir string) string
	}{
		{"qcow2 over a backing file", func(t *testing.T, dir string) string {
			qemuSource(t, dir, "base.qcow2", "qcow2")
			p := filepath.Join(dir, "top.qcow2")
			if err := testimg.Run("qemu-img", "create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", p); err != nil {
				t.Fatal(err)
			}
			return p
		}},
		{"vdi", func(t *testing.T, dir string) string { return qemuSource(t, dir, "d.vdi", "vdi") }},
		{"vhdx", func(t *testing.T, dir string) string { return qemuSource(t, dir, "d.vhdx", "vhdx") }},
		{"vhd", func(t *testing.T, dir string) string { return qemuSource(t, dir, "d.vhd", "vpc") }},
		{"monolithicSparse chain", func(t *testing.T, dir string) string {
			p, err := testimg.VMDKChain(dir, "web", "monolithicSparse", 4<<20, data, testimg.Layer{{Offset: 0, Length: 512, Byte: 3}})
			if err != nil {
				t.Fatal(err)
			}
			return p[0]
		}},
		{"twoGbMaxExtentSparse", func(t *testing.T, dir string) string {
			p, err := testimg.VMDKChain(dir, "split", "twoGbMaxExtentSparse", 4<<20, data)
			if err != nil {
				t.Fatal(err)
			}
			return p[0]
		}},
		{"VMware streamOptimized", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "stream.vmdk")
			if err := testimg.StreamOptimized(p, 4<<20, data); err != nil {
				t.Fatal(err)
			}
			return p
		}},
		{"vmfsSparse over VMFS flat", func(t *testing.T, dir string) string {
			if _, err := testimg.VMFSFlat(dir, "base", 1, 4<<20, data); err != nil {
				t.Fatal(err)
			}
			p, err := testimg.VMFSSparse(dir, "snap", "base.vmdk", 2, 1, 4<<20, 1, testimg.Layer{{Offset: 512, Length: 512, Byte: 3}})
			if err != nil {
				t.Fatal(err)
			}
			return p
		}},
		{"seSparse over VMFS flat", func(t *testing.T, dir string) string {
			if _, err := testimg.VMFSFlat(dir, "base", 1, 4<<20, data); err != nil {
				t.Fatal(err)
			}
			p, err := testimg.SESparse(dir, "snap", "base.vmdk", 2, 1, 4<<20, testimg.Layer{{Offset: 4096, Length: 4096, Byte: 3}})
			if err != nil {
				t.Fatal(err)
			}
			return p
		}},
	}
	e := newEngine(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src, out := t.TempDir(), t.TempDir()
			p, err := e.Plan(context.Background(), engine.Request{
				Source: engine.SourceSpec{Path: c.make(t, src)},
				Output: engine.OutputSpec{Path: filepath.Join(out, "disk.qcow2"), Format: "qcow2"},
			}, engine.PlanOptions{})
			if err != nil {
				t.Fatalf("a sound source is refused: %v", err)
			}
			if w := strings.Join(p.Warnings, "\n"); strings.Contains(w, "qemu-img check") {
				t.Errorf("warnings on a sound source: %s", w)
			}
		})
	}
}
