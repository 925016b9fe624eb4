package engine

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"syscall"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
)

// scratch makes a private folder under the work folder. Its name carries
// this process's pid: a SIGKILLed run (terraform killed, the provider with
// it) runs no deferred clean-up, and the pid is how a later process tells
// that run's folder, an overlay of the guest perhaps hundreds of MiB large,
// from a live one's.
func (e *Engine) scratch(prefix string) (string, error) {
	if err := os.MkdirAll(e.cfg.WorkDir, 0o755); err != nil {
		return "", fault.Wrap(fault.Internal, e.cfg.WorkDir, err, "cannot create the work folder")
	}
	sweepScratch(e.cfg.WorkDir)
	return os.MkdirTemp(e.cfg.WorkDir, fmt.Sprintf("%s%d-", prefix, os.Getpid()))
}

// scratchName matches the folders scratch makes: "apply-<pid>-<random>".
var scratchName = regexp.MustCompile(`^(?:apply|plan|plan-guest|boot|domain|instrument)-([0-9]+)-[0-9]+$`)

// swept holds the work folders this process has swept: once is enough, as
// every folder left later is a live process's.
var swept sync.Map

// sweepScratch removes the scratch folders of processes that are gone.
func sweepScratch(dir string) {
	if _, done := swept.LoadOrStore(dir, true); done {
		return
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		m := scratchName.FindStringSubmatch(e.Name())
		if m == nil || !e.IsDir() {
			continue
		}
		if pid, err := strconv.Atoi(m[1]); err == nil && pid != os.Getpid() && !processAlive(pid) {
			os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
}

func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
