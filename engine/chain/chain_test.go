package chain_test

import (
	"context"

	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/vmconv/terraform-provider-vmconv/engine/internal/qemuimg"

	"github.com/vmconv/terraform-provider-vmconv/engine/chain"
	"github.com/vmconv/terraform-provider-vmconv/engine/diskformat"
	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/internal/testimg"
)

const mib = testimg.MiB

// Layers with disjoint and overlapping writes: the base's data must survive
// where no snapshot wrote, and the newest layer must win where all did.
var (
	baseLayer = testimg.BaseLayer
	snap1     = testimg.Snap1
	snap2     = testimg.Snap2
)

func requireTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Fatalf("%s is required (run tools/setup): %v", name, err)
	}
}

// convertRaw converts the materialized chain to raw with qemu-img and
// returns the bytes, for judging in Go.
func convertRaw(t *testing.T, c *chain.Chain) []byte {
	t.Helper()
	top, driver, err := c.Materialize(context.Background(), filepath.Join(t.TempDir(), "shadow"), qemuimg.Exec{})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out.raw")
	if err := testimg.Run("qemu-img", "convert", "-f", driver, "-O", "raw", top, out); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestResolveAndReadEveryVMDKKind(t *testing.T) {
	requireTool(t, "qemu-img")
	const size = 8 * mib
	type build func(dir string) (head string, layers int, err error)
	hosted := func(sub string) build {
		return func(dir string) (string, int, error) {
			p, err := testimg.VMDKChain(dir, "web", sub, size, baseLayer, snap1, snap2)
			if err != nil {
				return "", 0, err
			}
			return p[0], 3, nil
		}
	}
	cases := []struct {
		name      string
		build     build
		subformat string // of the base layer
	}{
		{"monolithicSparse", hosted("monolithicSparse"), "monolithicSparse"},
		{"streamOptimized", hosted("streamOptimized"), "streamOptimized"},
		{"streamOptimized (VMware layout)", func(dir string) (string, int, error) {
			base := filepath.Join(dir, "exp.vmdk")
			if err := testimg.StreamOptimized(base, size, baseLayer); err != nil {
				return "", 0, err
			}
			// A hosted snapshot on top, as after importing an OVA into Workstation.
			p := filepath.Join(dir, "exp-000001.vmdk")
			if err := testimg.Run("qemu-img", "create", "-q", "-f", "vmdk", "-b", "exp.vmdk", "-F", "vmdk", p); err != nil {
				return "", 0, err
			}
			if err := testimg.QemuWrite(p, "vmdk", testimg.Merge(snap1, snap2)); err != nil {
				return "", 0, err
			}
			return p, 2, nil
		}, "streamOptimized"},
		{"twoGbMaxExtentSparse", hosted("twoGbMaxExtentSparse"), "twoGbMaxExtentSparse"},
		{"monolithicFlat", hosted("monolithicFlat"), "monolithicFlat"},
		{"vmfs+vmfsSparse", func(dir string) (string, int, error) {
			if _, err := testimg.VMFSFlat(dir, "db", 0x1111, size, baseLayer); err != nil {
				return "", 0, err
			}
			if _, err := testimg.VMFSSparse(dir, "db-000001", "db.vmdk", 0x2222, 0x1111, size, 1, snap1); err != nil {
				return "", 0, err
			}
			p, err := testimg.VMFSSparse(dir, "db-000002", "db-000001.vmdk", 0x3333, 0x2222, size, 1, snap2)
			return p, 3, err
		}, "vmfs"},
		{"vmfs+seSparse", func(dir string) (string, int, error) {
			if _, err := testimg.VMFSFlat(dir, "app", 0x1111, size, baseLayer); err != nil {
				return "", 0, err
			}
			if _, err := testimg.SESparse(dir, "app-000001", "app.vmdk", 0x2222, 0x1111, size, snap1); err != nil {
				return "", 0, err
			}
			p, err := testimg.SESparse(dir, "app-000002", "app-000001.vmdk", 0x3333, 0x2222, size, snap2)
			return p, 3, err
		}, "vmfs"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			head, n, err := tc.build(dir)
			if err != nil {
				t.Fatal(err)
			}
			c, err := chain.Resolve(head, chain.Options{})
			if err != nil {
				t.Fatalf("Resolve: %v", err)
			}
			if len(c.Layers) != n {
				t.Fatalf("chain has %d layers, want %d: %v", len(c.Layers), n, c.Paths())
			}
			if got := c.Layers[n-1].Subformat; got != tc.subformat {
				t.Errorf("base subformat %q, want %q", got, tc.subformat)
			}
			if c.VirtualSize() != size {
				t.Errorf("virtual size %d, want %d", c.VirtualSize(), size)
			}
			want := testimg.NewExpected(size, baseLayer, snap1, snap2)
			if err := want.Compare(convertRaw(t, c)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestSingleFileFormats(t *testing.T) {
	requireTool(t, "qemu-img")
	const size = 8 * mib
	content := testimg.Merge(baseLayer, snap1, snap2)
	for _, f := range []struct {
		format diskformat.Format
		opts   string
	}{{diskformat.QCOW2, ""}, {diskformat.VHD, "subformat=dynamic"}, {diskformat.VHD, "subformat=fixed"}, {diskformat.VHDX, ""}, {diskformat.VDI, ""}, {diskformat.Raw, ""}} {
		t.Run(fmt.Sprintf("%s-%s", f.format, f.opts), func(t *testing.T) {
			dir := t.TempDir()
			raw := filepath.Join(dir, "src.raw")
			if err := testimg.RawFile(raw, size, content); err != nil {
				t.Fatal(err)
			}
			img := filepath.Join(dir, "disk.img") // extension deliberately says nothing
			args := []string{"convert", "-q", "-f", "raw", "-O", f.format.QemuDriver()}
			if f.opts != "" {
				args = append(args, "-o", f.opts)
			}
			if err := testimg.Run("qemu-img", append(args, raw, img)...); err != nil {
				t.Fatal(err)
			}
			opts := chain.Options{}
			if f.format == diskformat.Raw {
				// Pattern bytes carry no partition table: raw must be declared.
				if _, err := chain.Resolve(img, opts); fault.CodeOf(err) != fault.UnknownFormat {
					t.Fatalf("undeclared raw without a partition table: got %v, want unknown_format", err)
				}
				opts.Format = diskformat.Raw
			}
			c, err := chain.Resolve(img, opts)
			if err != nil {
				t.Fatalf("Resolve: %v", err)
			}
			if c.Head().Format != f.format {
				t.Fatalf("detected %s, want %s", c.Head().Format, f.format)
			}
			if c.VirtualSize() < size {
				t.Fatalf("virtual size %d < %d", c.VirtualSize(), size)
			}
			got := convertRaw(t, c)
			if err := testimg.NewExpected(size, content).Compare(got[:size]); err != nil {
				t.Fatal(err)
			}
		})
	}
}
