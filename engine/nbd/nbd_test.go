package nbd

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Tests in this file use the real QEMU tools as the NBD client.

// run runs a tool with a deadline: a server that answers a request wrongly
// tends to leave QEMU waiting forever rather than failing.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %q: %v\n%s", name, args, err, out)
	}
	return string(out)
}

// serveFile exports path byte for byte on a socket in a fresh directory and
// returns the socket path; the server stops when the test ends.
func serveFile(t *testing.T, path string, wrap func(io.ReaderAt, int64) io.ReaderAt) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	var r io.ReaderAt = f
	if wrap != nil {
		r = wrap(f, st.Size())
	}
	return serve(t, r, st.Size())
}

func serve(t *testing.T, r io.ReaderAt, size int64) string {
	t.Helper()
	sock := filepath.Join(shortDir(t), "s.sock")
	l, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, l, r, size) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return sock
}

// shortDir is a temporary directory with a short path: t.TempDir under a
// long test name can exceed the 107 bytes a unix socket path may have. Its
// name has characters a URI must escape, so every QEMU test checks URI.
func shortDir(t *testing.T) string {
	d, err := os.MkdirTemp("", "nbd a&b#")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// makeBase makes a 64 MiB qcow2 file with two patterned ranges.
func makeBase(t *testing.T) string {
	base := filepath.Join(t.TempDir(), "base.qcow2")
	run(t, "qemu-img", "create", "-f", "qcow2", base, "64M")
	run(t, "qemu-io", "-f", "qcow2", "-c", "write -P 0xab 1M 1M", "-c", "write -P 0xcd 40M 64k", base)
	return base
}

func sum(t *testing.T, path string) [32]byte {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// qcow2OverNBD is a qemu filename opening the exported qcow2 file as qcow2.
func qcow2OverNBD(sock string) string {
	return `json:{"driver":"qcow2","file":{"driver":"nbd","server":{"type":"unix","path":"` + sock + `"}}}`
}

func TestQEMUCompare(t *testing.T) {
	base := makeBase(t)
	// A qcow2 file with nothing written is not a whole number of sectors
	// long (its L1 table is its last 16 bytes).
	fresh := filepath.Join(t.TempDir(), "fresh.qcow2")
	run(t, "qemu-img", "create", "-f", "qcow2", fresh, "1G")
	if st, err := os.Stat(fresh); err != nil {
		t.Fatal(err)
	} else if st.Size()%512 == 0 {
		t.Fatalf("fresh qcow2 is %d bytes, a whole number of sectors", st.Size())
	}
	for _, tc := range []struct {
		name string
		base string
		wrap func(io.ReaderAt, int64) io.ReaderAt
	}{
		{"file", base, nil},
		{"unaligned file", fresh, nil},
		// 1 MiB blocks and room for 3: QEMU's metadata and data reads are
		// evicted and reloaded, which must not change a byte.
		{"cached", base, func(r io.ReaderAt, n int64) io.ReaderAt { return NewCache(r, n, 1<<20, 3) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sock := serveFile(t, tc.base, tc.wrap)
			out := run(t, "qemu-img", "compare", "-f", "qcow2", tc.base, qcow2OverNBD(sock))
			if !strings.Contains(out, "Images are identical") {
				t.Fatalf("qemu-img compare: %s", out)
			}
			// The same through the URI form the overlay's backing file uses.
			out = run(t, "qemu-img", "compare", "-f", "qcow2", "-F", "qcow2", tc.base, URI(sock))
			if !strings.Contains(out, "Images are identical") {
				t.Fatalf("qemu-img compare via %s: %s", URI(sock), out)
			}
		})
	}
}

// The exported bytes must be the file's bytes to the last one, also when
// the size is not a multiple of 512 (a qcow2 file often is not).
func TestQEMUReadsUnalignedTail(t *testing.T) {
	dir := t.TempDir()
	raw := filepath.Join(dir, "odd.raw")
	data := bytes.Repeat([]byte("0123456789abcdef"), 4096)
	data = append(data, "tail!"...) // 65541 bytes
	if err := os.WriteFile(raw, data, 0o644); err != nil {
		t.Fatal(err)
	}
	sock := serveFile(t, raw, nil)
	got := filepath.Join(dir, "got.raw")
	run(t, "qemu-img", "convert", "-f", "raw", "-O", "raw", URI(sock), got)
	b, err := os.ReadFile(got)
	if err != nil {
		t.Fatal(err)
	}
	// The export is the file padded with zeros to a whole sector.
	if len(b) != 66048 || !bytes.Equal(b[:len(data)], data) || strings.Trim(string(b[len(data):]), "\x00") != "" {
		t.Fatalf("converted %d bytes, want the file's %d bytes then zeros to 66048", len(b), len(data))
	}
}

// The flow the engine uses for a remote base: a local overlay backed by the
// NBD export, written, read, then rebased onto the real base file.
func TestQEMUOverlayFlow(t *testing.T) {
	base := makeBase(t)
	before := sum(t, base)
	sock := serveFile(t, base, func(r io.ReaderAt, n int64) io.ReaderAt { return NewCache(r, n, 1<<20, 16) })
	ov := filepath.Join(t.TempDir(), "ov.qcow2")
	run(t, "qemu-img", "create", "-f", "qcow2", "-b", URI(sock), "-F", "qcow2", ov)
	run(t, "qemu-io", "-f", "qcow2", "-c", "write -P 0x11 2M 64k", ov)
	run(t, "qemu-io", "-r", "-f", "qcow2", "-c", "read -P 0xab 1M 1M", "-c", "read -P 0x11 2M 64k", "-c", "read -P 0xcd 40M 64k", "-c", "read -P 0 3M 1M", ov)

	run(t, "qemu-img", "rebase", "-u", "-f", "qcow2", "-b", base, "-F", "qcow2", ov)
	info := run(t, "qemu-img", "info", ov)
	if !strings.Contains(info, "backing file: "+base) {
		t.Fatalf("rebased overlay does not name the base:\n%s", info)
	}
	run(t, "qemu-io", "-r", "-f", "qcow2", "-c", "read -P 0xab 1M 1M", "-c", "read -P 0x11 2M 64k", "-c", "read -P 0xcd 40M 64k", ov)
	if sum(t, base) != before {
		t.Fatal("the base file changed")
	}
	// A wrong pattern must fail, or the reads above proved nothing.
	if out, err := exec.Command("qemu-io", "-r", "-f", "qcow2", "-c", "read -P 0x11 1M 64k", ov).CombinedOutput(); err == nil || !strings.Contains(string(out), "Pattern verification failed") {
		t.Fatalf("a wrong pattern verified:\n%s", out)
	}
}

// QEMU honours the read-only flag and refuses to open the export for
// writing; the server's own refusal of writes is in TestTransmission.
func TestQEMUWriteRefused(t *testing.T) {
	base := makeBase(t)
	before := sum(t, base)
	sock := serveFile(t, base, nil)
	out, err := exec.Command("qemu-io", "-f", "raw", "-c", "write 0 512", URI(sock)).CombinedOutput()
	if err == nil || strings.Contains(string(out), "wrote 512/512") {
		t.Fatalf("write through NBD was not refused: err=%v\n%s", err, out)
	}
	if sum(t, base) != before {
		t.Fatal("the base file changed")
	}
}

// qemu-nbd --list exercises NBD_OPT_LIST and NBD_OPT_INFO.
func TestQEMUList(t *testing.T) {
	base := makeBase(t)
	st, err := os.Stat(base)
	if err != nil {
		t.Fatal(err)
	}
	out := run(t, "qemu-nbd", "--list", "-k", serveFile(t, base, nil))
	for _, want := range []string{"exports available: 1", "export: ''", "readonly", "min block: 1", "max block: 33554432"} {
		if !strings.Contains(out, want) {
			t.Errorf("qemu-nbd --list lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(out, "size:  "+strconv.FormatInt((st.Size()+511)/512*512, 10)) {
		t.Errorf("qemu-nbd --list does not show size %d:\n%s", st.Size(), out)
	}
}
