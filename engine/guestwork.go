package engine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/vmconv/terraform-provider-vmconv/engine/accel"
	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/engine/fix"
	"github.com/vmconv/terraform-provider-vmconv/engine/guest"
	"github.com/vmconv/terraform-provider-vmconv/engine/inspect"
	"github.com/vmconv/terraform-provider-vmconv/engine/internal/guestfs"
	"github.com/vmconv/terraform-provider-vmconv/engine/output"
	"github.com/vmconv/terraform-provider-vmconv/engine/validate"
)

// openAppliance starts libguestfs on a disk image under the engine's
// accelerator choice.
func (e *Engine) openAppliance(ctx context.Context, image, format, workDir string) (guest.Session, string, error) {
	a, err := e.Accel(ctx)
	if err != nil {
		return nil, "", fault.Wrap(fault.HypervisorFailed, "", err, "cannot decide between KVM and software emulation")
	}
	s, err := guestfs.Open(ctx, guestfs.Options{
		Drive: image, Format: format, TCG: a.Mode == accel.TCG, WorkDir: workDir, Qemu: e.cfg.Qemu, MemoryMiB: 1536,
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil, "", ctx.Err()
		}
		return nil, "", fault.Wrap(fault.InspectionFailed, image, err, "the libguestfs appliance did not start").
			WithHint("Run libguestfs-test-tool to see why. On machines where nested KVM hangs guests, set the provider's accel = \"tcg\".")
	}
	return s, string(a.Mode), nil
}

func (j *job) closeSession() error {
	if j.session == nil {
		return nil
	}
	err := j.session.Close()
	j.session = nil
	return err
}

type inspectStage struct{}

func (inspectStage) name() StageName { return StageInspect }

func (inspectStage) run(ctx context.Context, j *job) error {
	s, mode, err := j.e.openAppliance(ctx, j.input, j.inputDriver, filepath.Join(j.work, "appliance"))
	if err != nil {
		return err
	}
	j.session, j.accel = s, mode
	info, err := inspect.Inspect(s, inspect.Options{Root: j.plan.Request.Inspect.Root})
	if err != nil {
		return err
	}
	j.res.Guest = info
	j.res.Warnings = append(j.res.Warnings, info.Warnings...)
	if !info.HasOS() {
		j.emit(EventInfo, StageInspect, "no operating system on the disk: converting it as a data disk, without fixes or boot test", nil)
		return nil
	}
	j.emit(EventInfo, StageInspect, fmt.Sprintf("found %s (%s %s, %s, %s)", info.ProductName, info.Distro, info.Version, info.Firmware, info.Root), map[string]any{
		"distro": info.Distro, "version": info.Version, "firmware": info.Firmware, "initramfs": info.InitramfsTool,
		"network": strings.Join(info.NetworkStacks, ","), "tools": strings.Join(info.HypervisorTools, ","),
	})
	return nil
}

type fixStage struct{}

func (fixStage) name() StageName { return StageFix }

func (fixStage) run(ctx context.Context, j *job) error {
	defer j.closeSession()
	if j.res.Guest == nil {
		return skip{"the guest was not inspected"}
	}
	if !j.res.Guest.HasOS() {
		return skip{"no operating system on the disk (a data disk): nothing to fix"}
	}
	r, why := fix.For(j.res.Guest)
	if r == nil {
		return skip{why}
	}
	o := j.plan.Request.Fixes.Options
	o.DryRun = j.plan.Request.Fixes.DryRun
	rep, err := r.Run(ctx, j.res.Guest, j.session, o)
	if rep != nil {
		j.res.Fixes, j.res.Drivers = &rep.Result, rep.Drivers
		if !o.DryRun {
			j.hives = rep.Backups
		}
		for _, c := range rep.Changes {
			j.emit(EventChange, StageFix, fmt.Sprintf("%s: %s %s", c.Fix, c.Action, c.Path+c.Command), map[string]any{"fix": c.Fix, "reason": c.Reason})
		}
		j.res.Warnings = append(j.res.Warnings, rep.Warnings...)
	}
	if err != nil {
		return err
	}
	if err := j.session.Sync(); err != nil {
		return fault.Wrap(fault.FixFailed, "", err, "cannot flush the fixed guest")
	}
	// The overlay must be released before CONVERT reads it.
	return j.closeSession()
}

type validateStage struct{}

func (validateStage) name() StageName { return StageValidate }

func (validateStage) run(ctx context.Context, j *job) error {
	if j.res.Guest == nil {
		return skip{"the guest was not inspected"}
	}
	if !j.res.Guest.HasOS() {
		return skip{"no operating system on the disk (a data disk): nothing to boot"}
	}
	if j.res.Guest.OS == "windows" {
		return skip{"the boot test's success signal is planted by a Linux unit: Windows guests are boot-tested by vmconv_kvm_domain with a boot_test.success_pattern (see the Windows guide)"}
	}
	res, err := j.e.bootTest(ctx, j.tmp, diskformatDriver(j.plan.Output.Format), j.res.Guest, j.plan.Request.BootTest.Options,
		output.BootLogPath(j.plan.Output.Path), filepath.Join(j.work, "boot"))
	j.res.BootTest = res
	if err != nil {
		return err
	}
	if !res.Passed() {
		return BootTestError(res, BootSite{Fixes: &j.plan.Request.Fixes, Pattern: j.plan.Request.BootTest.SuccessPattern != ""})
	}
	j.emit(EventInfo, StageValidate, "boot test passed: "+res.Detail, map[string]any{"duration_ms": res.DurationMS, "accel": res.Accel})
	return nil
}

// BootTest boots image under QEMU the way the VALIDATE stage does, for a
// converted output or a domain's disk.
func (e *Engine) BootTest(ctx context.Context, image, format string, info *guest.Info, o validate.Options, consoleLog string) (*validate.Result, error) {
	work, err := e.scratch("boot-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	return e.bootTest(ctx, image, format, info, o, consoleLog, work)
}

// bootTest instruments a throwaway overlay of image and boots it.
func (e *Engine) bootTest(ctx context.Context, image, format string, info *guest.Info, o validate.Options, consoleLog, work string) (*validate.Result, error) {
	if err := os.MkdirAll(work, 0o755); err != nil {
		return nil, err
	}
	overlay := filepath.Join(work, "boot.qcow2")
	if err := e.qemu.CreateOverlay(ctx, overlay, image, format); err != nil {
		return nil, toolFault(ctx, err, image, "cannot create the boot test overlay")
	}
	s, mode, err := e.openAppliance(ctx, overlay, "qcow2", filepath.Join(work, "appliance"))
	if err != nil {
		return nil, err
	}
	nonce := validate.NewNonce()
	var esp *validate.ESP
	err = func() error {
		defer s.Close()
		if err := s.MountRoot(info.Root); err != nil {
			return fault.Wrap(fault.BootTestFailed, image, err, "cannot mount the guest to prepare the boot test")
		}
		if err := validate.Instrument(s, nonce); err != nil {
			return fault.Wrap(fault.BootTestFailed, image, err, "cannot prepare the guest for the boot test")
		}
		if o.Firmware == "" {
			o.Firmware = info.Firmware
		}
		if o.Firmware == "uefi" && o.FirmwareBootEntry != "" {
			for _, f := range info.Filesystems {
				if t, err := s.PartitionType(f.Device); err == nil && strings.EqualFold(t, "C12A7328-F81F-11D2-BA4B-00A0C93EC93B") {
					if p, err := s.PartitionInfo(f.Device); err == nil {
						esp = &validate.ESP{Number: uint32(p.Number), StartLBA: uint64(p.Start / 512), SizeLBA: uint64(p.Size / 512), GUID: p.GUID}
					}
				}
			}
		}
		return s.Sync()
	}()
	if err != nil {
		return nil, err
	}
	m := validate.Machine{Qemu: e.cfg.Qemu, Accel: mode, Firmware: validate.Firmware{Dir: e.cfg.FirmwareDir}, ESP: esp}
	return validate.Boot(ctx, m, overlay, work, consoleLog, nonce, o)
}

// BootTestError turns a failed boot test into a diagnostic-ready error
// with the console's last lines, and hints that fit where it ran.
func BootTestError(r *validate.Result, site BootSite) error {
	tailText := consoleTail(r.ConsoleLog, 25)
	file, what := r.ConsoleLog, "the converted guest"
	if site.Domain != "" {
		// The domain's console log goes with its folder.
		file, what = site.Disk, fmt.Sprintf("the guest of domain %q", site.Domain)
	}
	fe := fault.New(fault.BootTestFailed, file, "%s did not boot: %s", what, r.Detail).
		WithFact("Reason", r.Reason).
		WithFact("Boot", fmt.Sprintf("%s disk, %s NIC, %s firmware, %s, after %.0fs", r.DiskBus, orNone(r.NICModel), r.Firmware, r.Accel, float64(r.DurationMS)/1000))
	if r.Matched != "" {
		fe = fe.WithFact("Console line", r.Matched)
	}
	fe = fe.WithFact("Console log (last lines)", "\n"+tailText)
	return fe.WithHint("%s", bootHint(r, site))
}

func orNone(s string) string {
	if s == "" {
		return "no"
	}
	return s
}

func consoleTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no console output)"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	for i, l := range lines {
		lines[i] = "  " + strings.TrimRight(validate.Strip(l), "\r")
	}
	return strings.Join(lines, "\n")
}
