package chain_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmconv/terraform-provider-vmconv/engine/chain"
	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/internal/testimg"
)

func hostedChain(t *testing.T, dir string) []string {
	t.Helper()
	p, err := testimg.VMDKChain(dir, "web", "monolithicSparse", 8*mib, baseLayer, snap1, snap2)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func truncate(t *testing.T, path string, keep float64) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, int64(float64(fi.Size())*keep)); err != nil {
		t.Fatal(err)
	}
}

func TestBadInput(t *testing.T) {
	requireTool(t, "qemu-img")
	cases := []struct {
		name     string
		setup    func(t *testing.T, dir string) string // returns the source path
		code     fault.Code
		fileBase string // base name of the file the error must name
		msg      string // substring of the message
	}{
		{"missing file", func(t *testing.T, dir string) string {
			return filepath.Join(dir, "nope.vmdk")
		}, fault.SourceMissing, "nope.vmdk", "does not exist"},
		{"unknown format", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "web.vmx")
			os.WriteFile(p, []byte("config.version = \"8\"\nvirtualHW.version = \"19\"\n"), 0o644)
			return p
		}, fault.UnknownFormat, "web.vmx", "matches no supported disk format"},
		{"truncated monolithicSparse", func(t *testing.T, dir string) string {
			p := hostedChain(t, dir)
			truncate(t, p[2], 0.5) // the base
			return p[0]
		}, fault.TruncatedImage, "web.vmdk", "file is only"},
		{"truncated streamOptimized", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "ova.vmdk")
			if err := testimg.StreamOptimized(p, 8*mib, baseLayer); err != nil {
				t.Fatal(err)
			}
			truncate(t, p, 0.7)
			return p
		}, fault.TruncatedImage, "ova.vmdk", "footer"},
		{"truncated flat extent", func(t *testing.T, dir string) string {
			p, err := testimg.VMFSFlat(dir, "db", 1, 8*mib, baseLayer)
			if err != nil {
				t.Fatal(err)
			}
			truncate(t, filepath.Join(dir, "db-flat.vmdk"), 0.5)
			return p
		}, fault.TruncatedImage, "db-flat.vmdk", "flat extent must hold"},
		{"truncated vmfsSparse delta", func(t *testing.T, dir string) string {
			testimg.VMFSFlat(dir, "db", 1, 8*mib, baseLayer)
			p, err := testimg.VMFSSparse(dir, "db-000001", "db.vmdk", 2, 1, 8*mib, 1, snap1)
			if err != nil {
				t.Fatal(err)
			}
			truncate(t, filepath.Join(dir, "db-000001-delta.vmdk"), 0.6)
			return p
		}, fault.TruncatedImage, "db-000001-delta.vmdk", "grain"},
		{"truncated seSparse", func(t *testing.T, dir string) string {
			testimg.VMFSFlat(dir, "db", 1, 8*mib, baseLayer)
			p, err := testimg.SESparse(dir, "db-000001", "db.vmdk", 2, 1, 8*mib, snap1)
			if err != nil {
				t.Fatal(err)
			}
			truncate(t, filepath.Join(dir, "db-000001-sesparse.vmdk"), 0.6)
			return p
		}, fault.TruncatedImage, "db-000001-sesparse.vmdk", "seSparse grain"},
		{"truncated qcow2", func(t *testing.T, dir string) string {
			raw, img := filepath.Join(dir, "a.raw"), filepath.Join(dir, "a.qcow2")
			testimg.RawFile(raw, 8*mib, baseLayer)
			if err := testimg.Run("qemu-img", "convert", "-O", "qcow2", raw, img); err != nil {
				t.Fatal(err)
			}
			truncate(t, img, 0.5)
			return img
		}, fault.TruncatedImage, "a.qcow2", "qcow2 data cluster"},
		{"corrupt descriptor", func(t *testing.T, dir string) string {
			p := hostedChain(t, dir)
			os.WriteFile(p[0], []byte("# Disk DescriptorFile\nversion=1\nCID=zz\nparentCID=ffffffff\ncreateType=\"vmfs\"\nRW 16384 VMFS \"x-flat.vmdk\"\n"), 0o644)
			return p[0]
		}, fault.CorruptDescriptor, "web-000002.vmdk", "not a hexadecimal CID"},
		{"descriptor with ZERO extent", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "z.vmdk")
			os.WriteFile(p, testimg.Descriptor(1, 0xffffffff, "monolithicFlat", "", "RW 100 FLAT \"z-flat.vmdk\" 0", "RW 100 ZERO"), 0o644)
			testimg.RawFile(filepath.Join(dir, "z-flat.vmdk"), 100*512, nil)
			return p
		}, fault.CorruptDescriptor, "z.vmdk", "ZERO"},
		{"parent missing", func(t *testing.T, dir string) string {
			p := hostedChain(t, dir)
			os.Remove(p[1])
			return p[0]
		}, fault.ChainParentMissing, "web-000002.vmdk", "web-000001.vmdk"},
		{"chain loops", func(t *testing.T, dir string) string {
			// Two vmfsSparse snapshots naming each other as parent.
			testimg.VMFSSparse(dir, "a", "b.vmdk", 1, 2, 8*mib, 1, snap1)
			p, _ := testimg.VMFSSparse(dir, "b", "a.vmdk", 2, 1, 8*mib, 1, snap2)
			return p
		}, fault.ChainLoop, "b.vmdk", "b.vmdk -> a.vmdk -> b.vmdk"},
		{"chain loops to itself", func(t *testing.T, dir string) string {
			p, _ := testimg.VMFSSparse(dir, "self", "self.vmdk", 1, 1, 8*mib, 1, snap1)
			return p
		}, fault.ChainLoop, "self.vmdk", "loops back"},
		{"extent outside source folder (relative)", func(t *testing.T, dir string) string {
			sub := filepath.Join(dir, "vm")
			os.Mkdir(sub, 0o755)
			testimg.RawFile(filepath.Join(dir, "secret.raw"), 8*mib, baseLayer)
			p := filepath.Join(sub, "evil.vmdk")
			os.WriteFile(p, testimg.Descriptor(1, 0xffffffff, "monolithicFlat", "", `RW 16384 FLAT "../secret.raw" 0`), 0o644)
			return p
		}, fault.PathOutsideSource, "evil.vmdk", "outside the source folder"},
		{"extent outside source folder (absolute)", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "evil.vmdk")
			os.WriteFile(p, testimg.Descriptor(1, 0xffffffff, "vmfs", "", `RW 16 VMFS "/etc/passwd"`), 0o644)
			return p
		}, fault.PathOutsideSource, "evil.vmdk", "/etc/passwd"},
		{"extent symlinked out of the source folder", func(t *testing.T, dir string) string {
			sub := filepath.Join(dir, "vm")
			os.Mkdir(sub, 0o755)
			testimg.RawFile(filepath.Join(dir, "secret.raw"), 8*mib, baseLayer)
			os.Symlink(filepath.Join(dir, "secret.raw"), filepath.Join(sub, "evil-flat.vmdk"))
			p := filepath.Join(sub, "evil.vmdk")
			os.WriteFile(p, testimg.Descriptor(1, 0xffffffff, "vmfs", "", `RW 16384 VMFS "evil-flat.vmdk"`), 0o644)
			return p
		}, fault.PathOutsideSource, "evil.vmdk", "secret.raw"},
		{"parentCID mismatch", func(t *testing.T, dir string) string {
			testimg.VMFSFlat(dir, "db", 0xaaaa, 8*mib, baseLayer)
			p, _ := testimg.VMFSSparse(dir, "db-000001", "db.vmdk", 2, 0xbbbb, 8*mib, 1, snap1)
			return p
		}, fault.ChainCIDMismatch, "db-000001.vmdk", "expects its parent to have CID 0000bbbb"},
		{"snapshot data file instead of descriptor", func(t *testing.T, dir string) string {
			testimg.VMFSFlat(dir, "db", 1, 8*mib, baseLayer)
			testimg.VMFSSparse(dir, "db-000001", "db.vmdk", 2, 1, 8*mib, 1, snap1)
			return filepath.Join(dir, "db-000001-delta.vmdk")
		}, fault.InvalidRequest, "db-000001-delta.vmdk", "not a disk"},
		{"raw device mapping", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "rdm.vmdk")
			os.WriteFile(p, testimg.Descriptor(1, 0xffffffff, "vmfsRawDeviceMap", "", `RW 16384 VMFSRDM "rdm-rdm.vmdk"`), 0o644)
			return p
		}, fault.UnsupportedFormat, "rdm.vmdk", "vmfsRawDeviceMap"},
		{"VHD differencing disk", func(t *testing.T, dir string) string {
			base, child := filepath.Join(dir, "base.vhd"), filepath.Join(dir, "child.vhd")
			testimg.Run("qemu-img", "create", "-q", "-f", "vpc", base, "8M")
			writeVHDDiff(t, base, child)
			return child
		}, fault.UnsupportedFormat, "child.vhd", "differencing"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			src := tc.setup(t, dir)
			before := checksumDir(t, dir)
			_, err := chain.Resolve(src, chain.Options{})
			fe, ok := fault.As(err)
			if !ok {
				t.Fatalf("got %v, want a %s fault", err, tc.code)
			}
			if fe.Code != tc.code {
				t.Fatalf("code %s, want %s: %v", fe.Code, tc.code, fe)
			}
			if filepath.Base(fe.File) != tc.fileBase {
				t.Errorf("names file %q, want %s", fe.File, tc.fileBase)
			}
			if !strings.Contains(fe.Error(), tc.msg) {
				t.Errorf("message %q lacks %q", fe.Error(), tc.msg)
			}
			if fe.Hint == "" && tc.code != fault.CorruptImage {
				t.Errorf("no hint says what to do: %v", fe)
			}
			if after := checksumDir(t, dir); after != before {
				t.Fatal("resolving modified the source folder")
			}
		})
	}
}

func TestParentCIDMismatchAllowed(t *testing.T) {
	requireTool(t, "qemu-img")
	dir := t.TempDir()
	testimg.VMFSFlat(dir, "db", 0xaaaa, 8*mib, baseLayer)
	p, _ := testimg.VMFSSparse(dir, "db-000001", "db.vmdk", 2, 0xbbbb, 8*mib, 1, snap1)
	c, err := chain.Resolve(p, chain.Options{AllowParentCIDMismatch: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Warnings) == 0 || !strings.Contains(strings.Join(c.Warnings, "\n"), "allow_parent_cid_mismatch") {
		t.Errorf("mismatch not reported as a warning: %v", c.Warnings)
	}
	// qemu refuses to read through a CID mismatch; the shadow chain must
	// still deliver both layers' data.
	if err := testimg.NewExpected(8*mib, baseLayer, snap1).Compare(convertRaw(t, c)); err != nil {
		t.Fatal(err)
	}
}

// TestCrossCheckWithQemu compares the chain this package resolves with the
// one qemu-img reports for the same untouched source.
func TestCrossCheckWithQemu(t *testing.T) {
	requireTool(t, "qemu-img")
	dir := t.TempDir()
	paths := hostedChain(t, dir)
	testimg.VMFSFlat(dir, "db", 0x11, 8*mib, baseLayer)
	testimg.VMFSSparse(dir, "db-000001", "db.vmdk", 0x22, 0x11, 8*mib, 1, snap1)
	esx, _ := testimg.SESparse(dir, "db-000002", "db-000001.vmdk", 0x33, 0x22, 8*mib, snap2)
	for _, head := range []string{paths[0], esx} {
		c, err := chain.Resolve(head, chain.Options{})
		if err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("qemu-img", "info", "--output=json", "--backing-chain", head).Output()
		if err != nil {
			t.Fatal(err)
		}
		var infos []struct {
			Filename    string `json:"filename"`
			VirtualSize int64  `json:"virtual-size"`
			Format      string `json:"format"`
		}
		if err := json.Unmarshal(out, &infos); err != nil {
			t.Fatal(err)
		}
		if len(infos) != len(c.Layers) {
			t.Fatalf("%s: qemu sees %d layers, we see %d", head, len(infos), len(c.Layers))
		}
		for i, in := range infos {
			l := c.Layers[i]
			if filepath.Clean(in.Filename) != l.Path || in.VirtualSize != l.VirtualSize || in.Format != string(l.Format) {
				t.Errorf("layer %d: qemu %s %d %s, we %s %d %s", i, in.Filename, in.VirtualSize, in.Format, l.Path, l.VirtualSize, l.Format)
			}
		}
	}
}
