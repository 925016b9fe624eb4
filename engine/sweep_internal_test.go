package engine

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A killed run whose process is a zombie (exited, not yet reaped by an
// init that reaps late) left its scratch folder as stale as a reaped
// one's: the sweep removes it, and still keeps a live process's.
func TestSweepRemovesAZombiesFolder(t *testing.T) {
	child := exec.Command("true")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	pid := child.Process.Pid
	defer child.Wait()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if i := strings.LastIndexByte(string(b), ')'); i > 0 && i+2 < len(b) && b[i+2] == 'Z' {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d never became a zombie: %q", pid, b)
		}
	}

	live := exec.Command("sleep", "60")
	if err := live.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { live.Process.Kill(); live.Wait() }()

	dir := t.TempDir()
	stale := filepath.Join(dir, fmt.Sprintf("apply-%d-123", pid))
	kept := filepath.Join(dir, fmt.Sprintf("apply-%d-456", live.Process.Pid))
	for _, d := range []string{stale, kept} {
		if err := os.MkdirAll(filepath.Join(d, "sub"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	sweepScratch(dir)
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("the zombie's folder was kept (%v)", err)
	}
	if _, err := os.Stat(kept); err != nil {
		t.Errorf("a live process's folder was swept: %v", err)
	}
}
