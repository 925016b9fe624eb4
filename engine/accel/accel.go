// Package accel decides between KVM and software emulation (TCG). Opening
// /dev/kvm proves nothing: under nested virtualisation it can open and
// still hang every guest right after the BIOS. So the probe boots a real
// kernel under KVM with a deadline and accepts KVM only if the kernel gets
// as far as panicking for want of a root file system. The answer is cached
// per host kernel, qemu binary and probe kernel.
package accel

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// Mode is an accelerator.
type Mode string

const (
	KVM Mode = "kvm"
	TCG Mode = "tcg"
)

// Setting values accepted from users.
const (
	Auto = "auto"
)

// Result is a probe's verdict.
type Result struct {
	Mode   Mode      `json:"mode"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
	Cached bool      `json:"-"`
}

// Options tune the probe.
type Options struct {
	Qemu     string        // default qemu-system-x86_64
	Kernel   string        // default: the newest /boot/vmlinuz-*
	Deadline time.Duration // default 20s
	CacheDir string        // where verdicts are kept; "" disables the cache
}

// Resolve turns a user setting (auto, kvm or tcg) into a mode, probing for
// auto.
func Resolve(ctx context.Context, setting string, o Options) (Result, error) {
	switch setting {
	case "", Auto:
		return Probe(ctx, o)
	case string(KVM):
		return Result{Mode: KVM, Reason: "set by configuration", At: time.Now()}, nil
	case string(TCG):
		return Result{Mode: TCG, Reason: "set by configuration", At: time.Now()}, nil
	}
	return Result{}, fmt.Errorf("accel must be auto, kvm or tcg, not %q", setting)
}

// Probe decides whether KVM works here.
func Probe(ctx context.Context, o Options) (Result, error) {
	if o.Qemu == "" {
		o.Qemu = "qemu-system-x86_64"
	}
	if o.Deadline == 0 {
		o.Deadline = 20 * time.Second
	}
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return Result{Mode: TCG, Reason: "/dev/kvm cannot be opened: " + err.Error(), At: time.Now()}, nil
	}
	f.Close()
	qemu, err := exec.LookPath(o.Qemu)
	if err != nil {
		return Result{}, fmt.Errorf("accel: %s is not installed: %w", o.Qemu, err)
	}
	if o.Kernel == "" {
		o.Kernel = newestKernel()
	}
	if o.Kernel == "" {
		return Result{Mode: TCG, Reason: "no kernel in /boot to probe KVM with; using software emulation", At: time.Now()}, nil
	}
	key := cacheKey(qemu, o.Kernel)
	if o.CacheDir != "" {
		if r, ok := load(o.CacheDir, key); ok {
			return r, nil
		}
	}
	r := boot(ctx, qemu, o.Kernel, o.Deadline)
	if ctx.Err() != nil {
		return Result{}, ctx.Err()
	}
	if o.CacheDir != "" {
		store(o.CacheDir, key, r)
	}
	return r, nil
}

func newestKernel() string {
	ks, _ := filepath.Glob("/boot/vmlinuz-*")
	sort.Strings(ks)
	for i := len(ks) - 1; i >= 0; i-- {
		if f, err := os.Open(ks[i]); err == nil {
			f.Close()
			return ks[i]
		}
	}
	return ""
}

// boot starts the kernel under KVM and waits for its root-mount panic.
func boot(ctx context.Context, qemu, kernel string, deadline time.Duration) Result {
	ctx, cancel := context.WithTimeout(ctx, deadline)
	defer cancel()
	cmd := exec.CommandContext(ctx, qemu, "-accel", "kvm", "-m", "256", "-nodefaults", "-no-user-config",
		"-display", "none", "-serial", "stdio", "-no-reboot", "-kernel", kernel,
		"-append", "console=ttyS0 panic=-1 loglevel=4")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	out, err := cmd.StdoutPipe()
	if err != nil {
		return Result{Mode: TCG, Reason: "cannot run the KVM probe: " + err.Error(), At: time.Now()}
	}
	cmd.Stderr = io.Discard
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return Result{Mode: TCG, Reason: "cannot start qemu for the KVM probe: " + err.Error(), At: time.Now()}
	}
	found := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			l := sc.Text()
			if strings.Contains(l, "Kernel panic") || strings.Contains(l, "VFS: Unable to mount root") {
				found <- true
				return
			}
		}
		found <- false
	}()
	ok := false
	select {
	case ok = <-found:
	case <-ctx.Done():
	}
	cancel()
	cmd.Wait()
	took := time.Since(start).Round(100 * time.Millisecond)
	if ok {
		return Result{Mode: KVM, Reason: fmt.Sprintf("a kernel booted under KVM in %s", took), At: time.Now()}
	}
	return Result{Mode: TCG, Reason: fmt.Sprintf("a kernel did not boot under KVM within %s (nested KVM that hangs guests looks like this); using software emulation", deadline), At: time.Now()}
}

func cacheKey(qemu, kernel string) string {
	h := sha256.New()
	var uts syscall.Utsname
	syscall.Uname(&uts)
	fmt.Fprintf(h, "%v\n", uts.Release)
	for _, p := range []string{qemu, kernel} {
		if fi, err := os.Stat(p); err == nil {
			fmt.Fprintf(h, "%s %d %d\n", p, fi.Size(), fi.ModTime().UnixNano())
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

func load(dir, key string) (Result, bool) {
	b, err := os.ReadFile(filepath.Join(dir, "accel-"+key+".json"))
	if err != nil {
		return Result{}, false
	}
	var r Result
	if json.Unmarshal(b, &r) != nil || (r.Mode != KVM && r.Mode != TCG) {
		return Result{}, false
	}
	r.Cached = true
	return r, true
}

func store(dir, key string, r Result) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return
	}
	b, _ := json.Marshal(r)
	tmp := filepath.Join(dir, "accel-"+key+".json.tmp")
	if os.WriteFile(tmp, b, 0o644) == nil {
		os.Rename(tmp, filepath.Join(dir, "accel-"+key+".json"))
	}
}

// GuestfsEnv returns the environment libguestfs needs for the mode: with
// TCG, the appliance must not try KVM.
func GuestfsEnv(m Mode) []string {
	if m == TCG {
		return []string{"LIBGUESTFS_BACKEND_SETTINGS=force_tcg"}
	}
	return nil
}

// ErrNoKVM is returned when KVM is demanded but cannot be opened.
var ErrNoKVM = errors.New("KVM requested but /dev/kvm cannot be opened")
