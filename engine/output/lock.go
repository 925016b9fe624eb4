package output

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/engine/internal/proc"
)

const (
	lockSuffix = ".vmconv.lock"
	// convertInfix names CONVERT's temporary output: ".<name>.vmconv-tmp-<pid>-<random>".
	convertInfix = ".vmconv-tmp-"
	// tmpInfix names WriteAtomic's and CommitDir's temporaries: ".<name>.tmp-<pid>-<random>".
	tmpInfix    = ".tmp-"
	holdsSuffix = ".vmconv-holds"
	hivesSuffix = ".vmconv-hives"
)

// HivesPath is the folder keeping a Windows guest's hives as they were
// before FIX edited them.
func HivesPath(path string) string { return path + hivesSuffix }

func lockPath(path string) string {
	return filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+lockSuffix)
}

// Lock is an exclusive claim on an output path.
//
// The lock file lives beside the output, the one place every process that
// writes that path agrees on, and goes away on Release: a run, successful
// or refused, leaves nothing behind. Unlinking a lock file others may have
// opened is safe only because Acquire re-checks, once it holds the lock,
// that the file it locked is still the one at the path; a process that
// locked an unlinked file retries on the current one. Only the holder of
// the file at the path ever unlinks it. A SIGKILLed holder leaves the file;
// the next holder takes it over and removes it on its Release.
type Lock struct {
	f    *os.File
	path string
}

// Acquire takes the output's lock without waiting: a second writer fails
// at once with a clear error instead of queueing behind a long conversion.
func Acquire(path string) (*Lock, error) {
	lp := lockPath(path)
	// Each retry means another process released (and unlinked) the file
	// between our open and our flock; a livelock would need that to
	// happen every time.
	for range 1000 {
		f, err := os.OpenFile(lp, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return nil, fault.Wrap(fault.OutputNotWritable, path, err, "cannot create the lock file %s", lp)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				return nil, fault.New(fault.OutputLocked, path, "another conversion is writing this output path right now").
					WithHint("Two resources (or two runs) name the same output.path. Give each its own path, or wait for the other run to finish.").
					WithFact("Lock file", lp)
			}
			return nil, fault.Wrap(fault.OutputNotWritable, path, err, "cannot lock %s", lp)
		}
		if samePath(f, lp) {
			return &Lock{f: f, path: path}, nil
		}
		f.Close() // locked a file its holder had already unlinked
	}
	return nil, fault.New(fault.OutputLocked, path, "the output path's lock kept changing hands while vmconv tried to take it").
		WithHint("Other runs are writing this output path in a tight loop. Give each resource its own output.path.").
		WithFact("Lock file", lp)
}

// samePath reports whether f is the file at path now.
func samePath(f *os.File, path string) bool {
	var fst, pst syscall.Stat_t
	if syscall.Fstat(int(f.Fd()), &fst) != nil || syscall.Stat(path, &pst) != nil {
		return false
	}
	return fst.Dev == pst.Dev && fst.Ino == pst.Ino
}

// Release removes the lock file and drops the lock. The file is unlinked
// while still locked, so no one can take over the path's current file
// between the unlink and the unlock.
func (l *Lock) Release() {
	if l == nil || l.f == nil {
		return
	}
	if lp := lockPath(l.path); samePath(l.f, lp) {
		os.Remove(lp)
	}
	syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	l.f.Close()
	l.f = nil
}

// TempPath returns a fresh hidden temporary name beside the output for
// CONVERT to write into.
func (l *Lock) TempPath() string {
	b := make([]byte, 6)
	rand.Read(b)
	return filepath.Join(filepath.Dir(l.path), fmt.Sprintf(".%s%s%d-%s", filepath.Base(l.path), convertInfix, os.Getpid(), hex.EncodeToString(b)))
}

// CleanStale removes the temporary files and folders that killed runs left
// for this output: CONVERT's partial outputs, the temporaries of the
// report, the hive backups and the holds list, and an output set's
// temporary folders; a previous set that a killed run parked is restored
// or deleted (see recoverParked). Call it only while holding the lock.
// CONVERT's files are written only under the lock, so any found now are
// stale; the others are also written without it (the holds by a domain,
// the report by a boot test re-run), so they go only when the process that
// wrote them is gone.
func (l *Lock) CleanStale() ([]string, error) {
	dir := filepath.Dir(l.path)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	removed, err := recoverParked(l.path, entries)
	if err != nil {
		return removed, err
	}
	for _, e := range entries {
		if !stale(filepath.Base(l.path), e.Name()) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if err := os.RemoveAll(p); err == nil {
			removed = append(removed, p)
		}
	}
	return removed, nil
}

// stale reports whether name, in the output's folder, is a temporary of
// the output called base that no live writer owns.
func stale(base, name string) bool {
	if strings.HasPrefix(name, "."+base+convertInfix) {
		return true
	}
	if pid, ok := setTempPid(base, name, tmpInfix); ok {
		// A set's temporary folder. Sets are written under the lock, but
		// the folder may hold a whole previous set being deleted: the pid
		// check is a second guard against sweeping a live writer's.
		return !proc.Alive(pid)
	}
	for _, kind := range []string{ReportSuffix, MarkdownSuffix, holdsSuffix, hivesSuffix} {
		rest, ok := strings.CutPrefix(name, "."+base+kind+tmpInfix)
		if !ok {
			continue
		}
		pid, _, withPid := strings.Cut(rest, "-")
		n, err := strconv.Atoi(pid)
		if !withPid || err != nil || n <= 0 {
			return true // named before temporaries carried their writer's pid
		}
		return !proc.Alive(n)
	}
	return false
}
