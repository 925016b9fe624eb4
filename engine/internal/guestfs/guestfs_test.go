package guestfs

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vmconv/terraform-provider-vmconv/engine/accel"
	"github.com/vmconv/terraform-provider-vmconv/internal/guestfsenv"
)

// TestMain lets this test binary act as a provider process holding an open
// appliance, which the test then SIGKILLs.
func TestMain(m *testing.M) {
	if img := os.Getenv("VMCONV_TEST_LONG_WORK_DISK"); img != "" {
		s, err := Open(context.Background(), Options{Drive: img, Format: "qcow2", ReadOnly: true,
			TCG: guestfsenv.Mode() == accel.TCG, WorkDir: os.Getenv("VMCONV_TEST_LONG_WORK")})
		if err != nil {
			fmt.Println("error", err)
			os.Exit(3)
		}
		s.Close()
		os.Exit(0)
	}
	if img := os.Getenv("VMCONV_TEST_APPLIANCE_DISK"); img != "" {
		s, err := Open(context.Background(), Options{Drive: img, Format: "qcow2", ReadOnly: true,
			TCG: guestfsenv.Mode() == accel.TCG, WorkDir: os.Getenv("VMCONV_TEST_APPLIANCE_WORK")})
		if err != nil {
			fmt.Println("error", err)
			os.Exit(3)
		}
		time.Sleep(10 * time.Minute)
		s.Close()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestApplianceDiesWithItsParent: a provider killed mid-apply must not leave
// the appliance's qemu (1.5 GiB) running, even when libguestfs' recovery
// process is killed with it.
func TestApplianceDiesWithItsParent(t *testing.T) {
	if os.Getenv("TF_ACC") == "" {
		t.Skip("TF_ACC is not set: appliance tests run with the acceptance tests")
	}
	dir := t.TempDir()
	img := filepath.Join(dir, "empty.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", img, "64M").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img: %v: %s", err, out)
	}
	work := filepath.Join(dir, "work")
	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), "VMCONV_TEST_APPLIANCE_DISK="+img, "VMCONV_TEST_APPLIANCE_WORK="+work)
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	var cmdline []byte
	t.Cleanup(func() {
		child.Process.Kill()
		for _, p := range sameCommandLine(cmdline) {
			syscall.Kill(p, syscall.SIGKILL)
		}
		child.Wait()
	})
	// Kill it while the appliance boots, the moment a killed apply is
	// likeliest to hit (a launch takes up to a minute under emulation).
	var pid int
	for deadline := time.Now().Add(2 * time.Minute); pid == 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the appliance's qemu never started")
		}
		// libguestfs runs qemu through the wrapper to probe it first; the
		// appliance is the run with a kernel.
		if b, err := os.ReadFile(filepath.Join(work, "guestfs-hv.pid")); err == nil {
			p, _ := strconv.Atoi(strings.TrimSpace(string(b)))
			if cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p)); err == nil && strings.Contains(string(cmd), "-kernel") {
				pid = p
			}
		}
	}
	time.Sleep(time.Second)
	// Read only now: Start returns as the exec begins, and until the new
	// program's arguments are set up (long, under load) the child's
	// cmdline reads empty, which would match nothing and kill nothing.
	cmdline, _ = os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", child.Process.Pid))
	if !slices.Contains(sameCommandLine(cmdline), child.Process.Pid) {
		t.Fatalf("the child's command line %q matches no process", cmdline)
	}
	// Kill it the way `pkill -f terraform-provider-vmconv` does: the
	// provider and every process that shares its command line, which
	// includes libguestfs' own recovery process, the one that would
	// otherwise reap the appliance.
	for _, p := range sameCommandLine(cmdline) {
		if p != pid {
			syscall.Kill(p, syscall.SIGKILL)
		}
	}
	child.Wait()
	deadline := time.Now().Add(15 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("the appliance's qemu (pid %d) outlived its killed parent", pid)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// sameCommandLine lists the processes running with this command line.
func sameCommandLine(want []byte) []int {
	if len(want) == 0 {
		return nil
	}
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p)); err == nil && string(b) == string(want) {
			out = append(out, p)
		}
	}
	return out
}

// TestLongWorkDir: libguestfs 1.48 overruns a heap buffer when the
// hypervisor path is long (see maxHVPath), and the process aborts later,
// in another launch ("corrupted size vs. prev_size"). A session in
// a deep work folder launches through a short link instead. glibc's
// malloc checker makes the overrun fatal at once, so the child process
// that opens the appliance dies without the short link.
func TestLongWorkDir(t *testing.T) {
	if os.Getenv("TF_ACC") == "" {
		t.Skip("TF_ACC is not set: appliance tests run with the acceptance tests")
	}
	const checker = "/lib/x86_64-linux-gnu/libc_malloc_debug.so.0"
	if _, err := os.Stat(checker); err != nil {
		t.Fatalf("glibc's malloc checker (Debian's libc6) is needed: %v", err)
	}
	dir := t.TempDir()
	img := filepath.Join(dir, "empty.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", img, "64M").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img: %v: %s", err, out)
	}
	// A wrapper path of 112 bytes: the probe command then crosses the end
	// of libguestfs's buffer in a multi-byte piece (110 and 118 abort
	// under the checker; 48, 78 and 98 do not).
	pad := 112 - len(filepath.Join(dir, "guestfs-hv")) - 1
	work := filepath.Join(dir, strings.Repeat("d", pad))
	// A link a killed process left, its work folder gone, is swept.
	dangling := filepath.Join(os.TempDir(), "vmconv-hv-0000000000000000")
	if err := os.Symlink(filepath.Join(dir, "gone", "guestfs-hv"), dangling); err != nil {
		t.Fatal(err)
	}
	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), "VMCONV_TEST_LONG_WORK_DISK="+img, "VMCONV_TEST_LONG_WORK="+work,
		"LD_PRELOAD="+checker, "MALLOC_CHECK_=3")
	out, err := child.CombinedOutput()
	if err != nil {
		t.Fatalf("an appliance opened in %s (%d bytes): %v\n%s", work, len(work), err, out)
	}
	// Other packages' sessions make links too: only this test's count.
	after, _ := filepath.Glob(filepath.Join(os.TempDir(), "vmconv-hv-*"))
	for _, l := range after {
		if target, _ := os.Readlink(l); strings.HasPrefix(target, work) {
			t.Errorf("the short link %s was left behind", l)
		}
	}
	if _, err := os.Lstat(dangling); err == nil {
		os.Remove(dangling)
		t.Error("the dangling link of a killed process was not swept")
	}
}
