package initrd

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// build makes an image the way mkinitramfs does, with the system's cpio
// and compressor: an early archive (as microcode is shipped) and a main
// one, compressed by compress ("" for none).
func build(t *testing.T, compress string) (image []byte, early []byte) {
	t.Helper()
	dir := t.TempDir()
	for name, body := range map[string]string{
		"early/kernel/x86/microcode/GenuineIntel.bin": "microcode",
		"main/init": "#!/bin/sh\n",
		"main/usr/lib/modules/6.1.0-50-amd64/modules.dep":                       "kernel/drivers/scsi/vmw_pvscsi.ko:\n",
		"main/usr/lib/modules/6.1.0-50-amd64/kernel/drivers/scsi/vmw_pvscsi.ko": "pvscsi",
		"main/conf/modules": "vmw_pvscsi\n",
	} {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.Symlink("usr/lib", filepath.Join(dir, "main/lib"))
	cpio := func(sub string) []byte {
		c := exec.Command("sh", "-c", "find . | LC_ALL=C sort | cpio --quiet -R 0:0 -o -H newc")
		c.Dir = filepath.Join(dir, sub)
		out, err := c.Output()
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	early = cpio("early")
	main := cpio("main")
	if compress != "" {
		c := exec.Command(compress, "-9", "-c")
		c.Stdin = bytes.NewReader(main)
		var err error
		if main, err = c.Output(); err != nil {
			t.Fatal(err)
		}
	}
	return append(append([]byte(nil), early...), main...), early
}

// list and extract the image with initramfs-tools' own tools, as the
// guest's lsinitramfs and the kernel (one archive after another) read it.
func unpack(t *testing.T, image []byte, early int, compressed bool) (names []string, dir string) {
	t.Helper()
	dir = t.TempDir()
	if !compressed {
		// lsinitramfs reads every plain archive as an early one and fails
		// on an image with no compressed part, ours or mkinitramfs's:
		// read each archive with cpio, as the kernel reads one after another.
		for sub, part := range map[string][]byte{"early": image[:early], "main": image[early:]} {
			os.MkdirAll(filepath.Join(dir, "x", sub), 0o755)
			c := exec.Command("cpio", "--quiet", "-idm")
			c.Dir, c.Stdin = filepath.Join(dir, "x", sub), bytes.NewReader(part)
			if out, err := c.CombinedOutput(); err != nil {
				t.Fatalf("cpio -i: %v\n%s", err, out)
			}
		}
		c := exec.Command("cpio", "--quiet", "-t")
		c.Stdin = bytes.NewReader(image[early:])
		out, err := c.Output()
		if err != nil {
			t.Fatal(err)
		}
		return strings.Split(strings.TrimSpace(string(out)), "\n"), filepath.Join(dir, "x")
	}
	img := filepath.Join(dir, "initrd.img")
	if err := os.WriteFile(img, image, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("lsinitramfs", img).CombinedOutput()
	if err != nil {
		t.Fatalf("lsinitramfs: %v\n%s", err, out)
	}
	names = strings.Split(strings.TrimSpace(string(out)), "\n")
	if out, err := exec.Command("unmkinitramfs", img, filepath.Join(dir, "x")).CombinedOutput(); err != nil {
		t.Fatalf("unmkinitramfs: %v\n%s", err, out)
	}
	return names, filepath.Join(dir, "x")
}

func TestPutKeepsEverythingElse(t *testing.T) {
	for _, comp := range []string{"zstd", "gzip", ""} {
		t.Run("compress="+comp, func(t *testing.T) {
			image, early := build(t, comp)
			im, err := Parse(image)
			if err != nil {
				t.Fatal(err)
			}
			if im.Compression() != comp {
				t.Errorf("compression %q, want %q", im.Compression(), comp)
			}
			if !slices.Contains(im.Names(), "usr/lib/modules/6.1.0-50-amd64/modules.dep") || slices.Contains(im.Names(), "kernel/x86/microcode/GenuineIntel.bin") {
				t.Fatalf("main archive's names: %v", im.Names())
			}
			const mod = "usr/lib/modules/6.1.0-50-amd64/kernel/drivers/block/virtio_blk.ko"
			if err := im.Put(mod, []byte("virtio blk module"), 0o644, 1700000000); err != nil {
				t.Fatal(err)
			}
			if err := im.Put("usr/lib/modules/6.1.0-50-amd64/modules.dep", []byte("kernel/drivers/block/virtio_blk.ko:\n"), 0o644, 1700000000); err != nil {
				t.Fatal(err)
			}
			if err := im.Put("lib", []byte("x"), 0o644, 0); !errors.Is(err, ErrUnsupported) {
				t.Errorf("replacing a symlink: %v, want ErrUnsupported", err)
			}
			out, err := im.Bytes()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(out, early) {
				t.Error("the early archive was not kept byte for byte")
			}
			names, dir := unpack(t, out, len(early), comp != "")
			for _, want := range []string{mod, "usr/lib/modules/6.1.0-50-amd64/kernel/drivers/block", "init", "conf/modules", "lib"} {
				if n := countOf(names, want); n != 1 {
					t.Errorf("lsinitramfs lists %s %d times:\n%s", want, n, strings.Join(names, "\n"))
				}
			}
			main := filepath.Join(dir, "main")
			for p, want := range map[string]string{
				mod: "virtio blk module",
				"usr/lib/modules/6.1.0-50-amd64/modules.dep":                       "kernel/drivers/block/virtio_blk.ko:\n",
				"usr/lib/modules/6.1.0-50-amd64/kernel/drivers/scsi/vmw_pvscsi.ko": "pvscsi",
				"init": "#!/bin/sh\n",
			} {
				b, err := os.ReadFile(filepath.Join(main, p))
				if err != nil || string(b) != want {
					t.Errorf("%s after the edit: %q, %v; want %q", p, b, err, want)
				}
			}
			if l, err := os.Readlink(filepath.Join(main, "lib")); err != nil || l != "usr/lib" {
				t.Errorf("the lib symlink: %q, %v", l, err)
			}
			b, _ := os.ReadFile(filepath.Join(dir, "early/kernel/x86/microcode/GenuineIntel.bin"))
			if string(b) != "microcode" {
				t.Errorf("early microcode after the edit: %q", b)
			}
			// A second edit reads what the first wrote.
			again, err := Parse(out)
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := again.File(mod); string(got) != "virtio blk module" {
				t.Errorf("re-parsed: %q", got)
			}
		})
	}
}

func TestParseRefuses(t *testing.T) {
	image, early := build(t, "")
	xz := exec.Command("xz", "-c")
	_, main := image[:len(early)], image[len(early):]
	xz.Stdin = bytes.NewReader(main)
	comp, err := xz.Output()
	if err != nil {
		t.Skip("no xz:", err)
	}
	if _, err := Parse(append(append([]byte(nil), early...), comp...)); !errors.Is(err, ErrUnsupported) {
		t.Errorf("xz main archive: %v, want ErrUnsupported", err)
	}
	cut := append([]byte(nil), image[:len(image)-600]...)
	if _, err := Parse(cut); !errors.Is(err, ErrUnsupported) {
		t.Errorf("truncated image: %v, want ErrUnsupported", err)
	}
}

func countOf(s []string, v string) (n int) {
	for _, x := range s {
		if x == v {
			n++
		}
	}
	return n
}
