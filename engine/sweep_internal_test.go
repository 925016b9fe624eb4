package engine

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// The sweep removes the scratch folders of processes that are gone and
// keeps a live process's. Whether a zombie counts as gone (it does: a
// provider whose terraform was SIGKILLed may wait seconds to be reaped)
// is proc.Alive's test.
func TestSweepKeepsOnlyLiveProcessesFolders(t *testing.T) {
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	live := exec.Command("sleep", "60")
	if err := live.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { live.Process.Kill(); live.Wait() }()

	dir := t.TempDir()
	stale := filepath.Join(dir, fmt.Sprintf("apply-%d-123", gone.Process.Pid))
	kept := filepath.Join(dir, fmt.Sprintf("apply-%d-456", live.Process.Pid))
	for _, d := range []string{stale, kept} {
		if err := os.MkdirAll(filepath.Join(d, "sub"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	sweepScratch(dir)
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("a gone process's folder was kept (%v)", err)
	}
	if _, err := os.Stat(kept); err != nil {
		t.Errorf("a live process's folder was swept: %v", err)
	}
}
