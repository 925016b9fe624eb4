package qemuimg

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func qemuImg(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("qemu-img", args...).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img %v: %v\n%s", args, err, out)
	}
}

// patchRefcount sets the 16-bit refcount of cluster i of a qcow2 image made
// by qemu-img (64 KiB clusters, refcount_bits=16).
func patchRefcount(t *testing.T, p string, i int, v uint16) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	be := binary.BigEndian
	rb := be.Uint64(b[be.Uint64(b[48:]):])
	be.PutUint16(b[rb+uint64(i)*2:], v)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	q := Exec{}
	ctx := context.Background()
	image := func(name string) string {
		p := filepath.Join(dir, name)
		qemuImg(t, "create", "-q", "-f", "qcow2", p, "4M")
		if out, err := exec.Command("qemu-io", "-f", "qcow2", "-c", "write -P 7 0 64k", p).CombinedOutput(); err != nil {
			t.Fatalf("qemu-io: %v\n%s", err, out)
		}
		return p
	}
	t.Run("clean", func(t *testing.T) {
		c, err := q.Check(ctx, image("clean.qcow2"), "qcow2")
		if err != nil || c.Corrupt() || c.Leaks != 0 || c.Format != "qcow2" {
			t.Fatalf("%+v, %v", c, err)
		}
	})
	t.Run("corrupt refcount", func(t *testing.T) {
		p := image("corrupt.qcow2")
		// The data cluster (after header, refcount table and block, L1 and
		// L2) is in use but counted zero times.
		patchRefcount(t, p, 5, 0)
		before, _ := os.ReadFile(p)
		c, err := q.Check(ctx, p, "qcow2")
		if err != nil {
			t.Fatal(err)
		}
		if !c.Corrupt() || c.Corruptions == 0 {
			t.Fatalf("not reported corrupt: %+v", c)
		}
		if len(c.Findings) == 0 || !strings.Contains(strings.Join(c.Findings, "\n"), "ERROR cluster 5") {
			t.Errorf("findings %q do not name the cluster", c.Findings)
		}
		if after, _ := os.ReadFile(p); string(after) != string(before) {
			t.Error("qemu-img check modified the image")
		}
	})
	t.Run("leak only", func(t *testing.T) {
		p := image("leak.qcow2")
		patchRefcount(t, p, 1, 2) // the refcount table, counted twice
		c, err := q.Check(ctx, p, "qcow2")
		if err != nil || c.Corrupt() || c.Leaks == 0 {
			t.Fatalf("%+v, %v", c, err)
		}
	})
	t.Run("format without a check", func(t *testing.T) {
		p := filepath.Join(dir, "d.vhd")
		qemuImg(t, "create", "-q", "-f", "vpc", p, "4M")
		if _, err := q.Check(ctx, p, "vpc"); !errors.Is(err, ErrCheckUnsupported) {
			t.Fatalf("got %v, want ErrCheckUnsupported", err)
		}
	})
	t.Run("backing file not opened", func(t *testing.T) {
		// A backing file qemu cannot open: plain `qemu-img check` follows
		// the name and fails; Check opens the one file and succeeds.
		p := filepath.Join(dir, "top.qcow2")
		qemuImg(t, "create", "-q", "-f", "qcow2", "-u", "-b", "/nonexistent/base.qcow2", "-F", "qcow2", p, "4M")
		if err := exec.Command("qemu-img", "check", "-f", "qcow2", p).Run(); err == nil {
			t.Fatal("plain qemu-img check opened a missing backing file; the test proves nothing")
		}
		if c, err := q.Check(ctx, p, "qcow2"); err != nil || c.Corrupt() {
			t.Fatalf("%+v, %v", c, err)
		}
	})
}

func TestCheckSpec(t *testing.T) {
	cases := []struct {
		path, driver string
		backing      bool
		err          bool
	}{
		{"/data/a.qcow2", "qcow2", true, false},
		{"/data/a.vmdk", "vmdk", true, false},
		{"/data/a.vdi", "vdi", false, false},
		{"/data/a\"b\\c.vhdx", "vhdx", false, false},
		{"relative.qcow2", "qcow2", false, true},
	}
	for _, c := range cases {
		t.Run(c.path, func(t *testing.T) {
			spec, err := CheckSpec(c.path, c.driver)
			if c.err {
				if err == nil {
					t.Fatalf("accepted %q", c.path)
				}
				return
			}
			var v map[string]any
			if err != nil || !strings.HasPrefix(spec, "json:") || json.Unmarshal([]byte(spec[5:]), &v) != nil {
				t.Fatalf("spec %q, %v", spec, err)
			}
			file, _ := v["file"].(map[string]any)
			if v["driver"] != c.driver || file["driver"] != "file" || file["filename"] != c.path {
				t.Errorf("spec %q", spec)
			}
			if b, ok := v["backing"]; ok != c.backing || (ok && b != nil) {
				t.Errorf("backing in %q: want null = %v", spec, c.backing)
			}
		})
	}
}
