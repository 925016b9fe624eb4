package output

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
)

func TestLockFileGoesWithTheLock(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "web.qcow2")
	l, err := Acquire(out)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(lockPath(out)); err != nil {
		t.Fatalf("no lock file while held: %v", err)
	}
	if _, err := Acquire(out); !fault.Is(err, fault.OutputLocked) {
		t.Fatalf("second Acquire: got %v, want output_locked", err)
	}
	l.Release()
	l.Release() // idempotent
	assertEmpty(t, dir)
}

// TestStaleLockFileIsTakenOver is what a SIGKILLed holder leaves: the file,
// no lock. The next holder takes it and removes it on release.
func TestStaleLockFileIsTakenOver(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "web.qcow2")
	if err := os.WriteFile(lockPath(out), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := Acquire(out)
	if err != nil {
		t.Fatal(err)
	}
	l.Release()
	assertEmpty(t, dir)
}

// TestLockExcludesAcrossUnlinks hammers one path from many goroutines (each
// Acquire opens its own file description, as separate processes do). Since
// Release unlinks the file, a taker that locked an already unlinked file
// would hold "a" lock beside the holder of the new file, unless Acquire
// checks that it locked the file at the path.
func TestLockExcludesAcrossUnlinks(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "web.qcow2")
	var inside, overlaps, taken atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 3000 {
				l, err := Acquire(out)
				if fault.Is(err, fault.OutputLocked) {
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				if inside.Add(1) > 1 {
					overlaps.Add(1)
				}
				taken.Add(1)
				time.Sleep(20 * time.Microsecond) // a holder does work
				inside.Add(-1)
				l.Release()
			}
		}()
	}
	wg.Wait()
	if n := overlaps.Load(); n > 0 {
		t.Fatalf("two holders at once %d times (of %d acquisitions)", n, taken.Load())
	}
	if taken.Load() < 100 {
		t.Fatalf("only %d acquisitions succeeded: the test proves nothing", taken.Load())
	}
	assertEmpty(t, dir)
}

func TestCleanStale(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "web.qcow2")
	dead := deadPid(t)
	live := strconv.Itoa(os.Getpid())
	files := map[string]bool{ // name: removed by CleanStale
		".web.qcow2.vmconv-tmp-" + live + "-aa":       true, // CONVERT's: only lock holders write them
		".web.qcow2.vmconv-tmp-" + dead + "-aa":       true,
		".web.qcow2.vmconv.json.tmp-" + dead + "-bb":  true, // the report's, its writer killed
		".web.qcow2.vmconv.json.tmp-0123456789ab":     true, // named before temporaries carried a pid
		".web.qcow2.vmconv.md.tmp-" + dead + "-gg":    true, // the Markdown report's
		".web.qcow2.vmconv-holds.tmp-" + dead + "-cc": true,
		".web.qcow2.vmconv-hives.tmp-" + dead + "-dd": true,  // a folder
		".web.qcow2.vmconv.json.tmp-" + live + "-ee":  false, // a live writer's (a boot test re-run)
		".web.qcow2.vmconv-holds.tmp-" + live + "-ff": false, // a live domain's
		"web.qcow2":                                    false,
		"web.qcow2.vmconv.json":                        false,
		"web.qcow2.boot-test.log":                      false,
		".other.qcow2.vmconv-tmp-" + dead + "-aa":      false, // another output's
		".other.qcow2.vmconv.json.tmp-" + dead + "-aa": false,
		".web.qcow2.x.vmconv-tmp-" + dead + "-aa":      false, // the output "web.qcow2.x"
		".web.qcow2.boot-test.log.tmp-" + dead + "-aa": false, // nothing vmconv writes
		"notes.txt": false,
	}
	hives := ".web.qcow2.vmconv-hives.tmp-" + dead + "-dd"
	for name := range files {
		p := filepath.Join(dir, name)
		if name == hives {
			if err := os.MkdirAll(filepath.Join(p, "SYSTEM.orig"), 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	l, err := Acquire(out)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	removed, err := l.CleanStale()
	if err != nil {
		t.Fatal(err)
	}
	for name, gone := range files {
		t.Run(name, func(t *testing.T) {
			_, err := os.Stat(filepath.Join(dir, name))
			if gone && err == nil {
				t.Error("not removed")
			}
			if !gone && err != nil {
				t.Errorf("removed: %v", err)
			}
			if gone != slices.Contains(removed, filepath.Join(dir, name)) {
				t.Errorf("CleanStale's list (%v) disagrees", removed)
			}
		})
	}
}

func TestWriteAtomicTempNamesCarryThePid(t *testing.T) {
	dir := t.TempDir()
	p := TempName(filepath.Join(dir, "web.qcow2.vmconv.json"))
	if stale("web.qcow2", filepath.Base(p)) {
		t.Fatalf("%s, written by this live process, counts as stale", p)
	}
}

// deadPid returns the pid of a process that has exited.
func deadPid(t *testing.T) string {
	t.Helper()
	c := exec.Command("true")
	if err := c.Run(); err != nil {
		t.Fatal(err)
	}
	return strconv.Itoa(c.Process.Pid)
}

func assertEmpty(t *testing.T, dir string) {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		t.Errorf("left in the output folder: %s", e.Name())
	}
}
