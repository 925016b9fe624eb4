package libvirttest

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// stop tears down whatever Start got to. Leaks are test errors: a stray
// libvirtd or mount would confuse the next test on this shared machine.
func (h *Host) stop(t testing.TB) {
	if h.libvirtd != nil && h.libvirtd.running() {
		// Domains first, while libvirtd can still stop them properly.
		if out, err := h.Exec(t, "virsh", "-c", "qemu:///system", "list", "--name"); err == nil {
			for _, d := range strings.Fields(string(out)) {
				if _, err := h.Exec(t, "virsh", "-c", "qemu:///system", "destroy", d); err != nil {
					t.Logf("libvirttest cleanup: %v", err)
				}
			}
		}
	}
	for _, d := range []*daemon{h.sshd, h.virtlogd, h.libvirtd} {
		if d != nil {
			d.stop()
		}
	}
	nsGone := true
	if err := killNamespace(h.id); err != nil {
		t.Errorf("libvirttest cleanup: %v", err)
		nsGone = false
	}
	if h.PoolPath != "" {
		if err := unmountView(h.PoolPath); err != nil {
			t.Errorf("libvirttest cleanup: %v", err)
		}
	}
	// The directory (its owner file) is what a later Start sweeps by: it
	// stays while anything is left in the namespace.
	if h.dir != "" && nsGone {
		if err := os.RemoveAll(h.dir); err != nil {
			t.Errorf("libvirttest cleanup: %v", err)
		}
	}
	os.Remove(baseDir) // only if no other instance uses it
}

func (d *daemon) running() bool {
	select {
	case <-d.done:
		return false
	default:
		return true
	}
}

// stop asks the daemon to exit, then kills it after ten seconds.
func (d *daemon) stop() {
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
		return
	case <-time.After(10 * time.Second):
	}
	d.cmd.Process.Kill()
	<-d.done
}

// killNamespace SIGKILLs every process that still sees instance id's
// namespace mounts (a domain's qemu, a hung virsh) and waits until none is
// left, so the namespace and its tmpfs memory are gone.
func killNamespace(id string) error {
	mark := []byte(" - tmpfs " + nsSourcePrefix + id + " ")
	deadline := time.Now().Add(15 * time.Second)
	for {
		left := nsProcesses(mark)
		if len(left) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes %v of remote host %s survive SIGKILL", left, id)
		}
		for _, pid := range left {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// nsProcesses lists the processes whose mount table holds mark. A zombie has
// no mount table any more and is not listed.
func nsProcesses(mark []byte) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "mountinfo"))
		if err == nil && bytes.Contains(b, mark) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// mount is one line of /proc/self/mountinfo.
type mount struct {
	source, fstype string
	readOnly       bool
}

// topMount is the mount that path shows to this process, the last one on it.
func topMount(path string) (mount, bool) { return topMountIn("/proc/self/mountinfo", path) }

// topMountIn is topMount in the mount table mountinfo.
func topMountIn(mountinfo, path string) (mount, bool) {
	b, err := os.ReadFile(mountinfo)
	if err != nil {
		return mount{}, false
	}
	var m mount
	found := false
	for _, line := range strings.Split(string(b), "\n") {
		before, after, ok := strings.Cut(line, " - ")
		f, g := strings.Fields(before), strings.Fields(after)
		if !ok || len(f) < 6 || len(g) < 2 || f[4] != path {
			continue
		}
		found = true
		m = mount{source: g[1], fstype: g[0]}
		for _, o := range strings.Split(f[5], ",") {
			m.readOnly = m.readOnly || o == "ro"
		}
	}
	return m, found
}

// unmountView removes the runner's read-only view of path, if it is there.
func unmountView(path string) error {
	for i := 0; i < 5; i++ {
		m, ok := topMount(path)
		if !ok || m.source != runnerViewSource {
			return nil
		}
		if err := syscall.Unmount(path, 0); err != nil {
			// Busy (a test's open directory): detach it now, the kernel
			// frees it when the last user goes.
			if err := syscall.Unmount(path, syscall.MNT_DETACH); err != nil {
				return fmt.Errorf("unmounting the runner's view of %s: %w", path, err)
			}
		}
	}
	return fmt.Errorf("the runner's view of %s is still mounted", path)
}

// writeOwner records which process owns the instance in dir, so that a
// later Start can tell a crashed test's leftovers from a running one's.
func writeOwner(dir string) error {
	tmp := filepath.Join(dir, "owner.tmp")
	if err := os.WriteFile(tmp, []byte(processID(os.Getpid())), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, "owner"))
}

// processID is "pid starttime": a pid alone may have been reused.
func processID(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	// The fields after the command name, which may hold spaces; starttime
	// is the 22nd field, the 20th after it.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return ""
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return ""
	}
	return fmt.Sprintf("%d %s", pid, f[19])
}

// sweepStale removes the instances whose test process is gone: it died
// (SIGKILL, a go test timeout) before its cleanup ran. Its daemons died with
// it; what can outlive it is a domain's qemu and the runner's view mount.
func sweepStale(t testing.TB) {
	entries, _ := os.ReadDir(baseDir)
	for _, e := range entries {
		dir := filepath.Join(baseDir, e.Name())
		owner, err := os.ReadFile(filepath.Join(dir, "owner"))
		if err != nil {
			// Between mkdir and writeOwner, or a leftover file: leave
			// young ones alone.
			if info, err := os.Stat(dir); err != nil || time.Since(info.ModTime()) < time.Minute {
				continue
			}
		} else {
			f := strings.Fields(string(owner))
			if len(f) == 2 {
				if pid, err := strconv.Atoi(f[0]); err == nil && processID(pid) == string(owner) {
					continue // alive
				}
			}
		}
		if !e.IsDir() {
			os.Remove(dir)
			continue
		}
		t.Logf("libvirttest: sweeping remote host %s left by a test process that is gone", e.Name())
		if err := killNamespace(e.Name()); err != nil {
			t.Logf("libvirttest sweep: %v", err)
		}
		if err := unmountView(filepath.Join(dir, "pool")); err != nil {
			t.Logf("libvirttest sweep: %v", err)
		}
		os.RemoveAll(dir)
	}
}
