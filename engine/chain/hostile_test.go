package chain_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vmconv/terraform-provider-vmconv/engine/chain"
	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/engine/internal/qemuimg"
	"github.com/vmconv/terraform-provider-vmconv/internal/opentrace"
	"github.com/vmconv/terraform-provider-vmconv/internal/testimg"
)

// secret is what a hostile disk tries to smuggle into the output.
var secret = []byte("VMCONV-HOST-SECRET-0123456789abcdef")

// hostileRoot lays out a test root: src is the source folder, outside holds
// files a disk must never make vmconv read (each full of the secret).
type hostileRoot struct{ root, src, outside string }

func newHostileRoot(t *testing.T) hostileRoot {
	t.Helper()
	root := t.TempDir()
	h := hostileRoot{root: root, src: filepath.Join(root, "src"), outside: filepath.Join(root, "outside")}
	for _, d := range []string{h.src, h.outside, filepath.Join(h.outside, "sub")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []string{"secret.raw", "decoy.raw"} {
		writeSecret(t, filepath.Join(h.outside, n))
	}
	return h
}

// writeSecret fills a 64 KiB file with the secret. It starts with an MBR
// signature so that it passes as a raw disk.
func writeSecret(t *testing.T, p string) {
	t.Helper()
	b := bytes.Repeat(secret, (64<<10)/len(secret)+1)[:64<<10]
	b[510], b[511] = 0x55, 0xaa
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// innocent writes a 64 KiB raw disk of a harmless byte with an MBR signature.
func innocent(t *testing.T, p string) {
	t.Helper()
	b := bytes.Repeat([]byte{0x11}, 64<<10)
	b[510], b[511] = 0x55, 0xaa
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// qcow2Over makes a 1 MiB qcow2 whose header names backing and, unless
// fmt is "", backing_fmt fmt (any string: the extension is patched in).
func qcow2Over(t *testing.T, path, backing, fmt string) {
	t.Helper()
	create := "raw"
	if len(fmt) == 5 {
		create = "qcow2"
	} else if len(fmt) == 4 {
		create = "vmdk"
	}
	if err := testimg.Run("qemu-img", "create", "-q", "-f", "qcow2", "-u", "-b", backing, "-F", create, path, "1M"); err != nil {
		t.Fatal(err)
	}
	if fmt == create {
		return
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	be := binary.BigEndian
	off := int(be.Uint32(b[100:]))
	for off+8 <= len(b) {
		typ, l := be.Uint32(b[off:]), int(be.Uint32(b[off+4:]))
		if typ == 0 {
			t.Fatal("no backing format extension to patch")
		}
		if typ == 0xe2792aca {
			if fmt == "" {
				be.PutUint32(b[off:], 0x0badf00d) // an unknown extension qemu skips
			} else {
				copy(b[off+8:off+8+l], fmt)
			}
			break
		}
		off += 8 + (l+7)&^7
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// readThrough materializes the chain and converts it to raw with a traced
// qemu-img, returning the bytes and every file qemu-img opened.
func readThrough(t *testing.T, c *chain.Chain) ([]byte, []opentrace.Open) {
	t.Helper()
	tr := opentrace.Wrap(t, "qemu-img")
	q := qemuimg.Exec{Path: tr.Path}
	top, driver, err := c.Materialize(context.Background(), filepath.Join(t.TempDir(), "shadow"), q)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out.raw")
	if err := q.Convert(context.Background(), qemuimg.ConvertArgs{Src: top, SrcDriver: driver, Dst: out, DstFormat: "raw"}, nil); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b, tr.Opens(t)
}

// assertConfined fails if qemu touched anything outside, opened the host's
// shadow file, or if the secret reached the output.
func assertConfined(t *testing.T, h hostileRoot, data []byte, opens []opentrace.Open) {
	t.Helper()
	if len(opens) == 0 {
		t.Fatal("the trace recorded no opens at all: the tracer is broken")
	}
	for _, o := range opentrace.Under(opens, h.outside) {
		t.Errorf("qemu-img tried to open %s (ok=%v), outside the source folder", o.Path, o.OK)
	}
	for _, o := range opens {
		if strings.HasSuffix(o.Path, "/etc/shadow") {
			t.Errorf("qemu-img tried to open %s", o.Path)
		}
	}
	if bytes.Contains(data, secret) {
		t.Error("the secret is in the output")
	}
}

// TestHostileReferences covers every route by which a disk names a file:
// each is either refused with the facts, or read with qemu pinned to the
// file that was checked.
func TestHostileReferences(t *testing.T) {
	requireTool(t, "qemu-img")
	cases := []struct {
		name  string
		setup func(t *testing.T, h hostileRoot) string
		code  fault.Code // "" when the chain is accepted and read
		msg   string
	}{
		{"qcow2 backing names an absolute file outside", func(t *testing.T, h hostileRoot) string {
			p := filepath.Join(h.src, "disk.qcow2")
			qcow2Over(t, p, filepath.Join(h.outside, "secret.raw"), "raw")
			return p
		}, fault.PathOutsideSource, "outside the source folder"},
		{"qcow2 backing climbs out with ..", func(t *testing.T, h hostileRoot) string {
			p := filepath.Join(h.src, "disk.qcow2")
			qcow2Over(t, p, "../outside/secret.raw", "raw")
			return p
		}, fault.PathOutsideSource, "outside the source folder"},
		{"qcow2 backing climbs out of a symlinked folder", func(t *testing.T, h hostileRoot) string {
			// Textually link/../decoy.raw is the harmless decoy.raw beside
			// the disk; the kernel follows link into outside/sub first, so
			// ".." lands in outside, on its decoy.raw, full of the secret.
			innocent(t, filepath.Join(h.src, "decoy.raw"))
			if err := os.Symlink(filepath.Join(h.outside, "sub"), filepath.Join(h.src, "link")); err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(h.src, "disk.qcow2")
			qcow2Over(t, p, "link/../decoy.raw", "raw")
			return p
		}, fault.PathOutsideSource, "outside/decoy.raw"},
		{"qcow2 backing is a json: specification", func(t *testing.T, h hostileRoot) string {
			p := filepath.Join(h.src, "disk.qcow2")
			qcow2Over(t, p, `json:{"driver":"raw","file":{"driver":"file","filename":"`+filepath.Join(h.outside, "secret.raw")+`"}}`, "raw")
			return p
		}, fault.UnsupportedFormat, "JSON specification"},
		{"qcow2 keeps its data in an external file", func(t *testing.T, h hostileRoot) string {
			p := filepath.Join(h.src, "disk.qcow2")
			if err := testimg.Run("qemu-img", "create", "-q", "-f", "qcow2", "-o", "data_file="+filepath.Join(h.outside, "secret.raw")+",data_file_raw=on", p, "1M"); err != nil {
				t.Fatal(err)
			}
			return p
		}, fault.UnsupportedFormat, "external file"},
		{"qcow2 backing_fmt contradicts the backing file", func(t *testing.T, h hostileRoot) string {
			// The checker would see raw bytes; qemu, told vmdk, would parse
			// them as a descriptor whose extent is the secret.
			desc := fmt.Sprintf("# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\nRW 2048 FLAT \"%s\" 0\n", filepath.Join(h.outside, "secret.raw"))
			b := make([]byte, 1<<20)
			copy(b[1024:], desc)
			b[510], b[511] = 0x55, 0xaa
			os.WriteFile(filepath.Join(h.src, "base.img"), b, 0o644)
			p := filepath.Join(h.src, "disk.qcow2")
			qcow2Over(t, p, "base.img", "vmdk")
			return p
		}, fault.CorruptImage, "names this file's format as vmdk"},
		{"qcow2 backing_fmt is not a disk format", func(t *testing.T, h hostileRoot) string {
			innocent(t, filepath.Join(h.src, "base.raw"))
			p := filepath.Join(h.src, "disk.qcow2")
			qcow2Over(t, p, "base.raw", "nbd")
			return p
		}, fault.UnsupportedFormat, `"nbd"`},
		{"qcow2 names the host's /etc/shadow, with a decoy of that name beside it", func(t *testing.T, h hostileRoot) string {
			innocent(t, filepath.Join(h.src, "shadow"))
			p := filepath.Join(h.src, "disk.qcow2")
			qcow2Over(t, p, "/etc/shadow", "raw")
			return p
		}, "", ""},
		{"qcow2 names an absolute VMDK parent outside, with a decoy beside it", func(t *testing.T, h hostileRoot) string {
			// The outside parent's extent is the secret; the decoy beside
			// the disk is a harmless VMDK of the same name.
			os.WriteFile(filepath.Join(h.outside, "parent.vmdk"), testimg.Descriptor(1, 0xffffffff, "monolithicFlat", "", `RW 128 FLAT "secret.raw" 0`), 0o644)
			os.WriteFile(filepath.Join(h.src, "parent.vmdk"), testimg.Descriptor(1, 0xffffffff, "monolithicFlat", "", `RW 128 FLAT "parent-flat.vmdk" 0`), 0o644)
			innocent(t, filepath.Join(h.src, "parent-flat.vmdk"))
			p := filepath.Join(h.src, "disk.qcow2")
			qcow2Over(t, p, filepath.Join(h.outside, "parent.vmdk"), "vmdk")
			return p
		}, "", ""},
		{"qcow2 with no backing_fmt over a qcow2 whose own backing is outside", func(t *testing.T, h hostileRoot) string {
			qcow2Over(t, filepath.Join(h.src, "mid.qcow2"), filepath.Join(h.outside, "secret.raw"), "raw")
			p := filepath.Join(h.src, "disk.qcow2")
			qcow2Over(t, p, "mid.qcow2", "")
			return p
		}, fault.PathOutsideSource, "outside the source folder"},
		{"VMDK parent hint climbs out of a symlinked folder", func(t *testing.T, h hostileRoot) string {
			innocent(t, filepath.Join(h.src, "decoy.raw"))
			os.Symlink(filepath.Join(h.outside, "sub"), filepath.Join(h.src, "link"))
			os.WriteFile(filepath.Join(h.src, "disk.vmdk"), testimg.Descriptor(1, 0xffffffff, "monolithicFlat", "", `RW 2048 FLAT "link/../decoy.raw" 0`), 0o644)
			return filepath.Join(h.src, "disk.vmdk")
		}, fault.PathOutsideSource, "outside/decoy.raw"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHostileRoot(t)
			src := tc.setup(t, h)
			before := checksumDir(t, h.root)
			c, err := chain.Resolve(src, chain.Options{})
			if tc.code != "" {
				fe, ok := fault.As(err)
				if !ok || fe.Code != tc.code {
					t.Fatalf("got %v, want a %s fault", err, tc.code)
				}
				if !strings.Contains(fe.Error()+" "+factsOf(fe), tc.msg) {
					t.Errorf("diagnostic %q lacks %q", fe.Error(), tc.msg)
				}
				if fe.File == "" {
					t.Error("the diagnostic names no file")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(c.Warnings) == 0 {
				t.Error("substituting a same-named file for an absolute parent was not reported")
			}
			data, opens := readThrough(t, c)
			assertConfined(t, h, data, opens)
			if !bytes.Contains(data, []byte{0x11, 0x11, 0x11, 0x11}) {
				t.Error("the output does not hold the decoy the plan said it would read")
			}
			if after := checksumDir(t, h.root); after != before {
				t.Error("reading the chain modified the test root")
			}
		})
	}
}

func factsOf(fe *fault.Error) string {
	var b strings.Builder
	for _, f := range fe.Facts {
		b.WriteString(f.Label + ": " + f.Value + "\n")
	}
	return b.String()
}

// TestNonRegularFilesRefusedAtOnce: a FIFO anywhere in the chain would
// block the reader forever; it must be refused without being opened for
// reading.
func TestNonRegularFilesRefusedAtOnce(t *testing.T) {
	requireTool(t, "qemu-img")
	fifo := func(t *testing.T, p string) {
		if err := syscall.Mkfifo(p, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name  string
		setup func(t *testing.T, dir string) string
	}{
		{"source is a FIFO", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "disk.vmdk")
			fifo(t, p)
			return p
		}},
		{"source is a symlink to a FIFO", func(t *testing.T, dir string) string {
			fifo(t, filepath.Join(dir, "pipe"))
			os.Symlink("pipe", filepath.Join(dir, "disk.vmdk"))
			return filepath.Join(dir, "disk.vmdk")
		}},
		{"qcow2 backing file is a FIFO", func(t *testing.T, dir string) string {
			fifo(t, filepath.Join(dir, "base.raw"))
			p := filepath.Join(dir, "disk.qcow2")
			qcow2Over(t, p, "base.raw", "raw")
			return p
		}},
		{"VMDK parent is a FIFO", func(t *testing.T, dir string) string {
			p, err := testimg.VMFSSparse(dir, "disk", "base.vmdk", 2, 1, 8*mib, 1, snap1)
			if err != nil {
				t.Fatal(err)
			}
			fifo(t, filepath.Join(dir, "base.vmdk"))
			return p
		}},
		{"VMDK extent is a FIFO", func(t *testing.T, dir string) string {
			fifo(t, filepath.Join(dir, "disk-flat.vmdk"))
			p := filepath.Join(dir, "disk.vmdk")
			os.WriteFile(p, testimg.Descriptor(1, 0xffffffff, "monolithicFlat", "", `RW 2048 FLAT "disk-flat.vmdk" 0`), 0o644)
			return p
		}},
		{"source is a character device", func(t *testing.T, dir string) string {
			os.Symlink("/dev/zero", filepath.Join(dir, "disk.raw"))
			return filepath.Join(dir, "disk.raw")
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := tc.setup(t, t.TempDir())
			done := make(chan error, 1)
			go func() {
				_, err := chain.Resolve(src, chain.Options{})
				done <- err
			}()
			select {
			case err := <-done:
				fe, ok := fault.As(err)
				if !ok || fe.Code != fault.InvalidRequest {
					t.Fatalf("got %v, want an invalid_request fault", err)
				}
				if !strings.Contains(fe.Error(), "named pipe") && !strings.Contains(fe.Error(), "character device") {
					t.Errorf("the diagnostic does not say what the file is: %v", fe)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("resolving hung on a non-regular file")
			}
		})
	}
}

// TestManyExtentsBounded: a descriptor with more extents than any real disk
// has is refused at once, and one with many legitimate extents is checked
// in time proportional to them.
func TestManyExtentsBounded(t *testing.T) {
	descriptor := func(n int, name func(i int) string) []byte {
		var b strings.Builder
		b.WriteString("# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\n\n")
		for i := 0; i < n; i++ {
			fmt.Fprintf(&b, "RW 1 FLAT %q %d\n", name(i), i)
		}
		return []byte(b.String())
	}
	t.Run("over the limit", func(t *testing.T) {
		dir := t.TempDir()
		p := filepath.Join(dir, "many.vmdk")
		os.WriteFile(p, descriptor(chain.MaxExtents+1, func(int) string { return "flat.bin" }), 0o644)
		os.WriteFile(filepath.Join(dir, "flat.bin"), make([]byte, 512*(chain.MaxExtents+1)), 0o644)
		start := time.Now()
		_, err := chain.Resolve(p, chain.Options{})
		if fe, ok := fault.As(err); !ok || fe.Code != fault.CorruptDescriptor || !strings.Contains(fe.Msg, "extents") {
			t.Fatalf("got %v, want a corrupt_descriptor fault about extents", err)
		}
		if d := time.Since(start); d > 20*time.Second {
			t.Errorf("refusing took %s", d)
		}
	})
	t.Run("10,000 extents", func(t *testing.T) {
		// The hostile corpus's descriptor: qemu alone needs minutes to
		// open it, several times per conversion.
		dir := t.TempDir()
		p := filepath.Join(dir, "many.vmdk")
		os.WriteFile(p, descriptor(10000, func(int) string { return "flat.bin" }), 0o644)
		os.WriteFile(filepath.Join(dir, "flat.bin"), make([]byte, 512*10000), 0o644)
		if _, err := chain.Resolve(p, chain.Options{}); !fault.Is(err, fault.CorruptDescriptor) {
			t.Fatalf("got %v, want a corrupt_descriptor fault", err)
		}
	})
	t.Run("the largest real split disk", func(t *testing.T) {
		dir := t.TempDir()
		p := filepath.Join(dir, "many.vmdk")
		os.WriteFile(p, descriptor(chain.MaxExtents, func(int) string { return "flat.bin" }), 0o644)
		os.WriteFile(filepath.Join(dir, "flat.bin"), make([]byte, 512*chain.MaxExtents), 0o644)
		start := time.Now()
		c, err := chain.Resolve(p, chain.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > 30*time.Second {
			t.Errorf("resolving %d extents took %s", chain.MaxExtents, d)
		}
		if len(c.Head().Extents) != chain.MaxExtents {
			t.Errorf("%d extents resolved", len(c.Head().Extents))
		}
	})
	t.Run("two sparse extents on one file", func(t *testing.T) {
		dir := t.TempDir()
		if _, err := testimg.VMDKChain(dir, "s", "twoGbMaxExtentSparse", 8*mib, baseLayer); err != nil {
			t.Fatal(err)
		}
		ext, _ := filepath.Glob(filepath.Join(dir, "s-s*.vmdk"))
		if len(ext) == 0 {
			t.Fatal("no sparse extent made")
		}
		p := filepath.Join(dir, "twice.vmdk")
		os.WriteFile(p, testimg.Descriptor(1, 0xffffffff, "twoGbMaxExtentSparse", "",
			fmt.Sprintf("RW 16384 SPARSE %q", filepath.Base(ext[0])), fmt.Sprintf("RW 16384 SPARSE %q", filepath.Base(ext[0]))), 0o644)
		_, err := chain.Resolve(p, chain.Options{})
		if fe, ok := fault.As(err); !ok || fe.Code != fault.CorruptDescriptor || !strings.Contains(fe.Msg, "both name the file") {
			t.Fatalf("got %v, want a refusal of two extents on one file", err)
		}
	})
}

// TestQcow2BackingCombinations generates qcow2 layers over every kind of
// backing name, backing format and backing content, and holds one
// property for all of them: the chain is refused with a diagnostic that
// names a file, or qemu reads it without opening anything outside the
// source folder and without the secret reaching the output.
func TestQcow2BackingCombinations(t *testing.T) {
	requireTool(t, "qemu-img")
	names := map[string]func(h hostileRoot) string{
		"relative":                func(h hostileRoot) string { return "base.img" },
		"relative through subdir": func(h hostileRoot) string { return "./d/../base.img" },
		"absolute inside":         func(h hostileRoot) string { return filepath.Join(h.src, "base.img") },
		"absolute outside":        func(h hostileRoot) string { return filepath.Join(h.outside, "secret.raw") },
		"absolute outside, decoy": func(h hostileRoot) string { return filepath.Join(h.outside, "base.img") },
		"absolute missing, decoy": func(h hostileRoot) string { return "/vmfs/volumes/ds1/web/base.img" },
		"climbs out":              func(h hostileRoot) string { return "../outside/secret.raw" },
		"symlinked climb":         func(h hostileRoot) string { return "link/../decoy.raw" },
		"json": func(h hostileRoot) string {
			return `json:{"driver":"raw","file":{"filename":"` + filepath.Join(h.outside, "secret.raw") + `"}}`
		},
		"protocol": func(h hostileRoot) string { return "nbd:127.0.0.1:10809" },
	}
	formats := []string{"", "raw", "qcow2", "vmdk", "vpc", "bogus"}
	contents := map[string]func(t *testing.T, h hostileRoot, p string){
		"raw disk": func(t *testing.T, h hostileRoot, p string) { innocent(t, p) },
		"qcow2 over the secret": func(t *testing.T, h hostileRoot, p string) {
			qcow2Over(t, p, filepath.Join(h.outside, "secret.raw"), "raw")
		},
		"descriptor text behind an MBR": func(t *testing.T, h hostileRoot, p string) {
			b := make([]byte, 1<<20)
			copy(b[1024:], fmt.Sprintf("# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\nRW 2048 FLAT \"%s\" 0\n", filepath.Join(h.outside, "secret.raw")))
			b[510], b[511] = 0x55, 0xaa
			os.WriteFile(p, b, 0o644)
		},
	}
	var accepted, refused atomic.Int32
	for nn, name := range names {
		for _, f := range formats {
			for cn, content := range contents {
				t.Run(fmt.Sprintf("%s/%s/%s", nn, f, cn), func(t *testing.T) {
					t.Parallel()
					h := newHostileRoot(t)
					os.MkdirAll(filepath.Join(h.src, "d"), 0o755)
					os.Symlink(filepath.Join(h.outside, "sub"), filepath.Join(h.src, "link"))
					content(t, h, filepath.Join(h.src, "base.img"))
					innocent(t, filepath.Join(h.src, "decoy.raw"))
					writeSecret(t, filepath.Join(h.outside, "base.img"))
					top := filepath.Join(h.src, "disk.qcow2")
					qcow2Over(t, top, name(h), f)
					c, err := chain.Resolve(top, chain.Options{})
					if err != nil {
						fe, ok := fault.As(err)
						if !ok || fe.File == "" || fe.Code == fault.Internal {
							t.Fatalf("refused without a diagnostic that names a file: %v", err)
						}
						refused.Add(1)
						return
					}
					accepted.Add(1)
					data, opens := readThrough(t, c)
					assertConfined(t, h, data, opens)
				})
			}
		}
	}
	t.Cleanup(func() {
		t.Logf("%d combinations accepted and read confined, %d refused", accepted.Load(), refused.Load())
		if accepted.Load() == 0 || refused.Load() == 0 {
			t.Errorf("the generator covers only one outcome (%d accepted, %d refused)", accepted.Load(), refused.Load())
		}
	})
}
