package engine

import (
	"context"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestUntouchedOverlay is the guard of the raw path: a kernel copy reads the
// source, not the overlay, so any write the appliance left in the overlay
// (data, zeroes, a discard from an fstrim) must send the disk through
// qemu-img, or a fix would be lost from the output.
func TestUntouchedOverlay(t *testing.T) {
	e, err := New(Config{WorkDir: t.TempDir(), CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	base := filepath.Join(dir, "base.raw")
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v: %s", args, err, out)
		}
	}
	run("qemu-img", "create", "-q", "-f", "raw", base, "4M")
	run("qemu-io", "-f", "raw", "-c", "write -P 7 0 4M", base)
	for _, tc := range []struct {
		name, io  string
		untouched bool
	}{
		{"fresh", "", true},
		{"data", "write -P 1 1M 4k", false},
		{"zeroes", "write -z 1M 64k", false},
		{"discard", "discard 1M 64k", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ov := filepath.Join(t.TempDir(), "overlay.qcow2")
			run("qemu-img", "create", "-q", "-f", "qcow2", "-b", base, "-F", "raw", ov)
			if tc.io != "" {
				run("qemu-io", "-f", "qcow2", "-c", tc.io, ov)
			}
			j := &job{e: e}
			if got := untouched(context.Background(), j, &diskWork{input: ov, inputDriver: "qcow2"}); got != tc.untouched {
				t.Errorf("untouched = %v, want %v", got, tc.untouched)
			}
		})
	}
}
