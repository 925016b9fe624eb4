package boottest

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
)

// Options configure a boot test.
type Options struct {
	Timeout   time.Duration `json:"timeout"`
	MemoryMiB int           `json:"memory_mib"`
	CPUs      int           `json:"cpus"`
	// SuccessPattern is a regular expression that counts as success on the
	// serial console. Empty means the planted marker.
	SuccessPattern string `json:"success_pattern,omitempty"`
	// DiskBus is virtio (default), sata or scsi (virtio-scsi).
	DiskBus string `json:"disk_bus"`
	// NICModel is virtio (default), e1000 or vmxnet3.
	NICModel string `json:"nic_model"`
	MAC      string `json:"mac,omitempty"`
	// RequireNetwork fails a boot whose marker reports no IPv4 address.
	RequireNetwork bool `json:"require_network"`
	// Firmware is bios or uefi.
	Firmware string `json:"firmware"`
	// FirmwareBootEntry, for UEFI, writes an NVRAM boot entry for this
	// loader path on the EFI system partition, as the source VM's NVRAM
	// had. A converted guest should boot without it.
	FirmwareBootEntry string `json:"firmware_boot_entry,omitempty"`
}

// Failure reasons.
const (
	ReasonSuccess      = "success"
	ReasonRootNotFound = "root_not_found"
	ReasonKernelPanic  = "kernel_panic"
	ReasonEmergency    = "emergency_mode"
	ReasonNoBootloader = "no_bootloader"
	ReasonNetworkDown  = "network_down"
	ReasonTimeout      = "timeout"
	ReasonHypervisor   = "hypervisor_failed"
)

// Result is what a boot test found.
type Result struct {
	Status      string   `json:"status"` // passed, failed
	Reason      string   `json:"reason"`
	Detail      string   `json:"detail"`
	Matched     string   `json:"matched,omitempty"`
	IPAddresses []string `json:"ip_addresses,omitempty"`
	DurationMS  int64    `json:"duration_ms"`
	ConsoleLog  string   `json:"console_log"`
	Accel       string   `json:"accel"`
	DiskBus     string   `json:"disk_bus"`
	NICModel    string   `json:"nic_model"`
	Firmware    string   `json:"firmware"`
}

// Passed reports success.
func (r *Result) Passed() bool { return r != nil && r.Status == "passed" }

// failure signatures, checked line by line on the serial console. They end
// the boot early: a guest that dropped to an initramfs shell never boots.
var failures = []struct {
	reason string
	re     *regexp.Regexp
}{
	{ReasonRootNotFound, regexp.MustCompile(`Gave up waiting for (root|suspend/resume) (file system )?device|ALERT!\s+\S+ does not exist|Cannot open root device|VFS: Unable to mount root fs|dracut-initqueue.*(timeout|Warning: Could not boot)|Warning: /dev/\S+ does not exist|Could not boot\.|Timed out waiting for device .*(sysroot|root)`)},
	{ReasonKernelPanic, regexp.MustCompile(`Kernel panic - not syncing`)},
	{ReasonEmergency, regexp.MustCompile(`You are in emergency mode|Give root password for maintenance|Entering emergency mode|dracut:/#`)},
	{ReasonNoBootloader, regexp.MustCompile(`No bootable device|Boot failed: not a bootable disk|BdsDxe: No bootable option|UEFI Interactive Shell|grub rescue>|error: no such device`)},
}

// Firmware locates OVMF.
type Firmware struct {
	Dir string // default /usr/share/OVMF
}

// Paths returns the code and the variables template.
func (f Firmware) Paths() (code, vars string, err error) {
	dir := f.Dir
	if dir == "" {
		dir = "/usr/share/OVMF"
	}
	for _, pair := range [][2]string{{"OVMF_CODE_4M.fd", "OVMF_VARS_4M.fd"}, {"OVMF_CODE.fd", "OVMF_VARS.fd"}} {
		c, v := filepath.Join(dir, pair[0]), filepath.Join(dir, pair[1])
		if fileExists(c) && fileExists(v) {
			return c, v, nil
		}
	}
	return "", "", fault.New(fault.FirmwareMissing, dir, "no OVMF UEFI firmware (OVMF_CODE*.fd and OVMF_VARS*.fd) found in %s", dir).
		WithHint("Install the ovmf package (Debian/Ubuntu: apt-get install ovmf), or set the firmware folder to where OVMF is installed.")
}

func fileExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// Machine is what Boot needs to run the guest.
type Machine struct {
	Qemu     string // qemu-system-x86_64
	Accel    string // kvm or tcg
	Firmware Firmware
	// ESP locates the EFI system partition, for FirmwareBootEntry.
	ESP *ESP
	// MoreDisks are qcow2 overlays of a VM's other disks, attached after
	// the boot disk in the VM's order on the same bus.
	MoreDisks []string
}

// NewNonce returns a random marker nonce.
func NewNonce() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Boot boots image (a qcow2 overlay) and watches its serial console.
func Boot(ctx context.Context, m Machine, image, workDir, consoleLog, nonce string, o Options) (*Result, error) {
	o = withDefaults(o, m.Accel)
	args, err := qemuArgs(m, image, workDir, consoleLog, o)
	if err != nil {
		return nil, err
	}
	if o.SuccessPattern != "" {
		if _, err := regexp.Compile(o.SuccessPattern); err != nil {
			return nil, fault.Wrap(fault.InvalidRequest, "", err, "boot_test.success_pattern is not a valid regular expression")
		}
	}
	os.Remove(consoleLog)
	bctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	qemu := m.Qemu
	if qemu == "" {
		qemu = "qemu-system-x86_64"
	}
	cmd := exec.CommandContext(bctx, qemu, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, fault.Wrap(fault.HypervisorFailed, qemu, err, "cannot start QEMU for the boot test")
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() { cancel(); <-exited }()
	alive := func() error {
		select {
		case err := <-exited:
			exited <- err
			return fmt.Errorf("QEMU exited before the guest booted: %s", strings.TrimSpace(lastN(stderr.String(), 500)))
		default:
			return nil
		}
	}
	res, err := Watch(bctx, consoleLog, nonce, o, alive)
	if err != nil && ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if res != nil {
		res.Accel, res.DiskBus, res.NICModel, res.Firmware = m.Accel, o.DiskBus, o.NICModel, o.Firmware
	}
	return res, err
}

// Watch follows a guest's serial console log until the success signal, a
// failure signature, the VM stopping (alive returns an error) or the
// context's deadline. QEMU runs and libvirt domains are judged alike.
func Watch(ctx context.Context, consoleLog, nonce string, o Options, alive func() error) (*Result, error) {
	res := &Result{ConsoleLog: consoleLog}
	success := regexp.MustCompile(regexp.QuoteMeta(Marker + " " + nonce))
	if o.SuccessPattern != "" {
		var err error
		if success, err = regexp.Compile(o.SuccessPattern); err != nil {
			return nil, fault.Wrap(fault.InvalidRequest, "", err, "boot_test.success_pattern is not a valid regular expression")
		}
	}
	markerRE := regexp.MustCompile(regexp.QuoteMeta(Marker+" "+nonce) + ` ip=(.*)$`)
	start := time.Now()
	lines := make(chan string, 256)
	stopTail := make(chan struct{})
	go tail(consoleLog, lines, stopTail)
	defer close(stopTail)
	finish := func(status, reason, detail, matched string) *Result {
		res.Status, res.Reason, res.Detail, res.Matched = status, reason, detail, matched
		res.DurationMS = time.Since(start).Milliseconds()
		return res
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case l := <-lines:
			if mm := markerRE.FindStringSubmatch(l); mm != nil {
				for _, f := range strings.Fields(mm[1]) {
					if f != "none" {
						res.IPAddresses = append(res.IPAddresses, f)
					}
				}
			}
			if success.MatchString(l) {
				if o.RequireNetwork && o.SuccessPattern == "" && len(res.IPAddresses) == 0 {
					return finish("failed", ReasonNetworkDown, "the guest reached multi-user but no network interface got an IPv4 address within a minute", l), nil
				}
				return finish("passed", ReasonSuccess, "the guest reached multi-user"+networkNote(res), l), nil
			}
			for _, f := range failures {
				if f.re.MatchString(l) {
					return finish("failed", f.reason, describe(f.reason), l), nil
				}
			}
		case <-tick.C:
			if err := alive(); err != nil {
				drain(lines, res, success, markerRE)
				if res.Status != "" {
					return res, nil
				}
				return finish("failed", ReasonHypervisor, err.Error(), ""), nil
			}
		case <-ctx.Done():
			return finish("failed", ReasonTimeout, fmt.Sprintf("no success signal within %s", o.Timeout), ""), nil
		}
	}
}

func drain(lines chan string, res *Result, success, marker *regexp.Regexp) {
	for {
		select {
		case l := <-lines:
			if success.MatchString(l) {
				res.Status, res.Reason, res.Matched = "passed", ReasonSuccess, l
				return
			}
		default:
			return
		}
	}
}

func networkNote(r *Result) string {
	if len(r.IPAddresses) == 0 {
		return ""
	}
	return " with network up (" + strings.Join(r.IPAddresses, ", ") + ")"
}

func describe(reason string) string {
	switch reason {
	case ReasonRootNotFound:
		return "the initramfs did not find the root file system (on a virtio disk this means the initramfs lacks virtio_blk, or root= names a device that does not exist)"
	case ReasonKernelPanic:
		return "the kernel panicked"
	case ReasonEmergency:
		return "systemd dropped to emergency mode (usually an fstab entry that does not resolve)"
	case ReasonNoBootloader:
		return "the firmware found no boot loader to start (for UEFI: no NVRAM entry and no \\EFI\\BOOT\\BOOTX64.EFI)"
	}
	return reason
}

func lastN(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

// tail follows a file as QEMU writes it, sending complete lines.
func tail(path string, out chan<- string, stop <-chan struct{}) {
	var f *os.File
	for f == nil {
		var err error
		if f, err = os.Open(path); err != nil {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	defer f.Close()
	r := bufio.NewReader(f)
	var partial strings.Builder
	for {
		chunk, err := r.ReadString('\n')
		partial.WriteString(chunk)
		if err == nil {
			l := strings.TrimRight(partial.String(), "\r\n")
			partial.Reset()
			select {
			case out <- stripANSI(l):
			case <-stop:
				return
			}
			continue
		}
		if err != io.EOF {
			return
		}
		// Prompts (grub rescue>, Shell>) never end their line.
		if p := partial.String(); strings.HasSuffix(p, "> ") || strings.HasSuffix(p, "login: ") {
			select {
			case out <- stripANSI(p):
			case <-stop:
				return
			}
			partial.Reset()
		}
		select {
		case <-stop:
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

var ansi = regexp.MustCompile(`\x1b\[[0-9;?]*[a-zA-Z]`)

func stripANSI(s string) string { return ansi.ReplaceAllString(s, "") }

// WithDefaults fills unset options the way Boot does.
func WithDefaults(o Options, accel string) Options { return withDefaults(o, accel) }

func withDefaults(o Options, accel string) Options {
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Minute
		if accel == "tcg" {
			o.Timeout = 15 * time.Minute
		}
	}
	if o.MemoryMiB == 0 {
		o.MemoryMiB = 1024
	}
	if o.CPUs == 0 {
		o.CPUs = 2
	}
	if o.DiskBus == "" {
		o.DiskBus = "virtio"
	}
	if o.NICModel == "" {
		o.NICModel = "virtio"
	}
	if o.MAC == "" {
		o.MAC = "52:54:00:76:6d:63"
	}
	if o.Firmware == "" {
		o.Firmware = "bios"
	}
	return o
}

func qemuArgs(m Machine, image, workDir, consoleLog string, o Options) ([]string, error) {
	accel := m.Accel
	cpu := "host"
	if accel != "kvm" {
		accel, cpu = "tcg", "max"
	}
	args := []string{
		"-machine", "q35", "-accel", accel, "-cpu", cpu,
		"-m", fmt.Sprint(o.MemoryMiB), "-smp", fmt.Sprint(o.CPUs),
		"-nodefaults", "-no-user-config", "-display", "none",
		// A display adapter, as every VM has: without one GRUB stalls.
		"-vga", "std",
		"-serial", "file:" + consoleLog,
		"-monitor", "none",
		"-drive", "file=" + image + ",format=qcow2,if=none,id=disk0,cache=unsafe",
		"-netdev", "user,id=net0",
	}
	// q35's AHCI controller has six ports.
	if o.DiskBus == "sata" && 1+len(m.MoreDisks) > 6 {
		return nil, fault.New(fault.InvalidRequest, "", "the VM has %d disks, and a SATA boot test can attach 6", 1+len(m.MoreDisks)).
			WithHint("Set boot_test.disk_bus to virtio or scsi.")
	}
	for i, disk := range append([]string{image}, m.MoreDisks...) {
		id, boot := fmt.Sprintf("disk%d", i), ""
		if i == 0 {
			boot = ",bootindex=1"
		} else {
			args = append(args, "-drive", "file="+disk+",format=qcow2,if=none,id="+id+",cache=unsafe")
		}
		switch o.DiskBus {
		case "virtio":
			args = append(args, "-device", "virtio-blk-pci,drive="+id+boot)
		case "sata":
			args = append(args, "-device", fmt.Sprintf("ide-hd,drive=%s,bus=ide.%d%s", id, i, boot))
		case "scsi":
			if i == 0 {
				args = append(args, "-device", "virtio-scsi-pci,id=scsi0")
			}
			args = append(args, "-device", fmt.Sprintf("scsi-hd,drive=%s,bus=scsi0.0,scsi-id=%d%s", id, i, boot))
		default:
			return nil, fault.New(fault.InvalidRequest, "", "boot_test.disk_bus %q is not virtio, sata or scsi", o.DiskBus)
		}
	}
	nic := map[string]string{"virtio": "virtio-net-pci", "e1000": "e1000", "vmxnet3": "vmxnet3"}[o.NICModel]
	if nic == "" {
		return nil, fault.New(fault.InvalidRequest, "", "boot_test.nic_model %q is not virtio, e1000 or vmxnet3", o.NICModel)
	}
	args = append(args, "-device", nic+",netdev=net0,mac="+o.MAC)
	if o.Firmware == "uefi" {
		code, varsTmpl, err := m.Firmware.Paths()
		if err != nil {
			return nil, err
		}
		vars := filepath.Join(workDir, "OVMF_VARS.fd")
		b, err := os.ReadFile(varsTmpl)
		if err != nil {
			return nil, err
		}
		if o.FirmwareBootEntry != "" {
			if m.ESP == nil {
				return nil, fault.New(fault.InvalidRequest, "", "boot_test.firmware_boot_entry is set but the disk has no EFI system partition")
			}
			if b, err = AddBootEntry(b, "vmconv boot test", *m.ESP, o.FirmwareBootEntry); err != nil {
				return nil, fault.Wrap(fault.HypervisorFailed, varsTmpl, err, "cannot write the NVRAM boot entry")
			}
		}
		if err := os.WriteFile(vars, b, 0o644); err != nil {
			return nil, err
		}
		args = append(args,
			"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+code,
			"-drive", "if=pflash,format=raw,unit=1,file="+vars)
	}
	return args, nil
}

// Strip removes terminal escape sequences from a console line.
func Strip(s string) string { return stripANSI(s) }
