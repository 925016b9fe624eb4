package iso9660

import (
	"bytes"
	"encoding/binary"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

// tree is what every test image holds: the virtio-win layout, a file larger
// than a sector, an empty file, a name long enough to need a Rock Ridge
// continuation area, and a deep path.
var tree = map[string][]byte{
	"viostor/2k19/amd64/viostor.inf":          []byte("[Version]\nDriverVer = 01/15/2024,100.95.104.26200\n"),
	"viostor/2k19/amd64/viostor.sys":          bytes.Repeat([]byte("MZ"), 3000),
	"viostor/2k19/amd64/viostor.cat":          {},
	"NetKVM/w10/x86/netkvm.inf":               []byte("netkvm"),
	"guest-agent/qemu-ga-x86_64.msi":          []byte("msi"),
	"a/b/c/d/e/f/g/h/i/deep.txt":              []byte("deep"),
	strings.Repeat("long-name-", 20) + ".txt": []byte("long"),
}

func writeTree(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for p, b := range tree {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// mkiso builds an image with xorriso, the tool distributions make ISOs with
// (the virtio-win ISO is made by genisoimage with -J -R, the same format).
func mkiso(t *testing.T, src string, flags ...string) string {
	t.Helper()
	if _, err := exec.LookPath("xorriso"); err != nil {
		t.Fatal("xorriso is missing: run tools/setup")
	}
	out := filepath.Join(t.TempDir(), "test.iso")
	args := append([]string{"-as", "mkisofs", "-quiet", "-V", "virtio-win", "-o", out}, flags...)
	cmd := exec.Command("xorriso", append(args, src)...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("xorriso: %v\n%s", err, b)
	}
	return out
}

func TestReadsWhatXorrisoWrote(t *testing.T) {
	src := writeTree(t)
	for _, c := range []struct {
		flags []string
		names string
		long  bool // whether a 204-character name survives (Joliet stops at 103)
	}{
		{[]string{"-R", "-J", "-joliet-long"}, "rock-ridge", true},
		{[]string{"--norock", "-J", "-joliet-long"}, "joliet", false},
		{[]string{"-R"}, "rock-ridge", true},
	} {
		t.Run(strings.Join(c.flags, ""), func(t *testing.T) {
			p := mkiso(t, src, c.flags...)
			if !Is(p) {
				t.Fatal("Is: false for an ISO")
			}
			im, err := Open(p)
			if err != nil {
				t.Fatal(err)
			}
			defer im.Close()
			if im.Names != c.names {
				t.Errorf("names from %s, want %s", im.Names, c.names)
			}
			var files []string
			for p := range tree {
				if c.long || len(p) < 100 {
					files = append(files, p)
				}
			}
			if err := fstest.TestFS(im, files...); err != nil {
				t.Fatal(err)
			}
			for _, name := range files {
				want := tree[name]
				got, err := fs.ReadFile(im, name)
				if err != nil || !bytes.Equal(got, want) {
					t.Errorf("%s: %d bytes, %v; want %d bytes", name, len(got), err, len(want))
				}
			}
			// Case does not matter, as on the Windows the image is for.
			if b, err := fs.ReadFile(im, "VIOSTOR/2K19/AMD64/VIOSTOR.INF"); err != nil || !bytes.Equal(b, tree["viostor/2k19/amd64/viostor.inf"]) {
				t.Errorf("case-insensitive lookup: %v", err)
			}
		})
	}
}

func TestPlainISO9660Names(t *testing.T) {
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "viostor", "amd64"), 0o755)
	os.WriteFile(filepath.Join(src, "viostor", "amd64", "viostor.inf"), []byte("inf"), 0o644)
	im, err := Open(mkiso(t, src, "--norock"))
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	if im.Names != "iso9660" {
		t.Errorf("names from %s", im.Names)
	}
	// ISO 9660 level 1 stores VIOSTOR.INF;1: the version goes, the case is
	// matched loosely.
	b, err := fs.ReadFile(im, "viostor/amd64/viostor.inf")
	if err != nil || string(b) != "inf" {
		t.Fatalf("read %q, %v", b, err)
	}
	ents, _ := fs.ReadDir(im, "viostor/amd64")
	if len(ents) != 1 || ents[0].Name() != "VIOSTOR.INF" {
		t.Errorf("entries %v", ents)
	}
}

func TestNotAnISO(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.iso")
	os.WriteFile(p, bytes.Repeat([]byte{0}, 40*sector), 0o644)
	if Is(p) {
		t.Error("Is: true for zeros")
	}
	if _, err := Open(p); err != ErrNotISO {
		t.Fatalf("error %v, want ErrNotISO", err)
	}
	short := filepath.Join(t.TempDir(), "short.iso")
	os.WriteFile(short, []byte("CD001"), 0o644)
	if _, err := Open(short); err != ErrNotISO {
		t.Fatalf("error %v, want ErrNotISO", err)
	}
}

func TestTruncatedImage(t *testing.T) {
	src := writeTree(t)
	p := mkiso(t, src, "-R", "-J")
	b, _ := os.ReadFile(p)
	im, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	im.Close()
	// Keep the descriptors and the directories, lose the last byte of file
	// data (and the padding after it).
	var end int64
	var last func(n *node)
	last = func(n *node) {
		for _, c := range n.children {
			if !c.dir {
				end = max(end, c.extent+c.size)
			}
			last(c)
		}
	}
	last(im.root)
	cut := filepath.Join(t.TempDir(), "cut.iso")
	os.WriteFile(cut, b[:end-1], 0o644)
	_, err = Open(cut)
	if err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("error %v, want one that says the image is truncated", err)
	}
	// Lose everything but the system area and the first descriptor.
	os.WriteFile(cut, b[:17*sector], 0o644)
	if _, err := Open(cut); err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("error %v", err)
	}
}

// A directory whose record points back at the root would send a walk round
// forever; Open refuses it.
func TestDirectoryLoop(t *testing.T) {
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "a", "b"), 0o755)
	p := mkiso(t, src, "--norock")
	b, _ := os.ReadFile(p)
	pvd := b[firstDescriptor*sector:]
	root, _ := record(pvd[156 : 156+34])
	a := findRecord(t, b, root, "A")
	ra, _ := record(b[a:])
	bOff := findRecord(t, b, ra, "B")
	// Point b's extent (both byte orders) at the root directory.
	lba := uint32(root.extent / sector)
	binary.LittleEndian.PutUint32(b[bOff+2:], lba)
	binary.BigEndian.PutUint32(b[bOff+6:], lba)
	binary.LittleEndian.PutUint32(b[bOff+10:], uint32(root.size))
	binary.BigEndian.PutUint32(b[bOff+14:], uint32(root.size))
	bad := filepath.Join(t.TempDir(), "loop.iso")
	os.WriteFile(bad, b, 0o644)
	_, err := Open(bad)
	if err == nil || !strings.Contains(err.Error(), "loop") {
		t.Fatalf("error %v, want a directory loop", err)
	}
}

// findRecord returns the byte offset in img of the record named id in the
// directory d.
func findRecord(t *testing.T, img []byte, d rec, id string) int {
	t.Helper()
	for off := int(d.extent); off < int(d.extent+d.size); {
		n := int(img[off])
		if n == 0 {
			off = (off/sector + 1) * sector
			continue
		}
		r, err := record(img[off : off+n])
		if err != nil {
			t.Fatal(err)
		}
		if string(r.id) == id {
			return off
		}
		off += n
	}
	t.Fatalf("no record %q", id)
	return 0
}

// The image comes from outside; arbitrary bytes must give an error, never a
// panic or a hang.
func FuzzRead(f *testing.F) {
	src := f.TempDir()
	os.MkdirAll(filepath.Join(src, "d"), 0o755)
	os.WriteFile(filepath.Join(src, "d", "f.inf"), []byte("x"), 0o644)
	for _, flags := range [][]string{{"-R", "-J"}, {"--norock", "-J"}, {"--norock"}} {
		out := filepath.Join(f.TempDir(), "seed.iso")
		args := append([]string{"-as", "mkisofs", "-quiet", "-o", out}, flags...)
		if b, err := exec.Command("xorriso", append(args, src)...).CombinedOutput(); err != nil {
			f.Fatalf("xorriso: %v\n%s", err, b)
		}
		b, _ := os.ReadFile(out)
		// The descriptors and directories sit in the first 40 sectors or
		// so; the seed keeps them and drops the zero padding after.
		f.Add(bytes.TrimRight(b, "\x00"))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		im, err := Read(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return
		}
		fs.WalkDir(im, ".", func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				fs.ReadFile(im, p)
			}
			return nil
		})
	})
}
