package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/vmconv/terraform-provider-vmconv/engine/accel"
	"github.com/vmconv/terraform-provider-vmconv/engine/boottest"
	"github.com/vmconv/terraform-provider-vmconv/engine/diskformat"
	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/engine/fix"
	"github.com/vmconv/terraform-provider-vmconv/engine/guest"
	"github.com/vmconv/terraform-provider-vmconv/engine/inspect"
	"github.com/vmconv/terraform-provider-vmconv/engine/internal/guestfs"
	"github.com/vmconv/terraform-provider-vmconv/engine/internal/qemuimg"
	"github.com/vmconv/terraform-provider-vmconv/engine/internal/rawcopy"
	"github.com/vmconv/terraform-provider-vmconv/engine/internal/run"
	"github.com/vmconv/terraform-provider-vmconv/engine/output"
	"github.com/vmconv/terraform-provider-vmconv/engine/progress"
)

type fetchStage struct{}

func (fetchStage) name() StageName { return StageFetch }

func (fetchStage) run(ctx context.Context, j *job) error {
	// The source was made local when the plan was re-checked (an OVA's
	// disk extracted, or found extracted, in the cache).
	return nil
}

type flattenStage struct{}

func (flattenStage) name() StageName { return StageFlatten }

// run presents the chain to qemu as one disk: the pinned chain, which names
// only validated files (see engine/chain), under a writable qcow2 overlay. The overlay opens
// the chain read-only, so guest work (inspect, fix) lands in the overlay
// and the source is never written.
func (flattenStage) run(ctx context.Context, j *job) error {
	for i, d := range j.disks {
		dir := j.work
		if len(j.disks) > 1 {
			dir = filepath.Join(j.work, fmt.Sprintf("disk%d", i))
		}
		top, driver, err := d.c.Materialize(ctx, filepath.Join(dir, "shadow"), j.e.qemu)
		if err != nil {
			return err
		}
		overlay := filepath.Join(dir, "overlay.qcow2")
		if err := j.e.qemu.CreateOverlay(ctx, overlay, top, driver); err != nil {
			return toolFault(ctx, err, d.c.Head().Path, "qemu-img cannot open the source chain")
		}
		d.input, d.inputDriver = overlay, "qcow2"
	}
	return nil
}

type convertStage struct{}

func (convertStage) name() StageName { return StageConvert }

func (convertStage) run(ctx context.Context, j *job) error {
	// The appliance holds the overlay's write lock; with fixes off it is
	// still open here.
	if err := j.closeSession(); err != nil {
		return fault.Wrap(fault.InspectionFailed, "", err, "cannot release the guest appliance")
	}
	for i, d := range j.disks {
		if err := convertDisk(ctx, j, i, d); err != nil {
			return err
		}
	}
	return nil
}

// convertDisk writes one disk's output into its temporary place: beside
// the output path for a disk conversion, into the set for a whole VM.
func convertDisk(ctx context.Context, j *job, i int, d *diskWork) error {
	if j.set != nil {
		tmp, err := j.set.Path(filepath.Base(d.out))
		if err != nil {
			return err
		}
		d.tmp = tmp
	} else {
		d.tmp = j.lock.TempPath()
	}
	what := "converting"
	if len(j.disks) > 1 {
		what = fmt.Sprintf("converting disk %d of %d", i+1, len(j.disks))
	}
	if segs, ok := rawSegments(ctx, j, d); ok {
		sum, err := copyRaw(ctx, j, d, what, segs)
		if err != nil {
			return err
		}
		d.sha256 = sum
		return nil
	}
	if err := qemuConvert(ctx, j, d, what); err != nil {
		return err
	}
	// Hash (CPU) and flush to disk (I/O) at the same time: both only read
	// the freshly written pages, and doing them in turn costs their sum.
	flushed := make(chan error, 1)
	go func() { flushed <- rawcopy.Fsync(d.tmp) }()
	sum, err := rawcopy.Sum(ctx, d.tmp, false)
	if ferr := <-flushed; err == nil && ferr != nil {
		err = ferr
	}
	if err != nil {
		return toolFault(ctx, err, d.out, "cannot checksum the output")
	}
	d.sha256 = sum.SHA256
	return nil
}

// qemuConvert writes one disk's output with qemu-img convert.
func qemuConvert(ctx context.Context, j *job, d *diskWork, what string) error {
	p := j.plan
	// qemu-img reports a share of the virtual disk: the meter counts it in
	// virtual bytes, so the rate and ETA read in the disk's own size.
	size := d.c.VirtualSize()
	m := &progress.Meter{}
	err := j.e.qemu.Convert(ctx, qemuimg.ConvertArgs{
		Src: d.input, SrcDriver: d.inputDriver,
		Dst: d.tmp, DstFormat: diskformatDriver(p.Output.Format),
		Compress:   p.Output.Compression,
		Coroutines: 16, // in-order writes keep the output byte-identical across runs
	}, func(pct float64) {
		if r, ok := m.Update(int64(pct/100*float64(size)), size); ok {
			j.sink.Event(Event{Time: time.Now(), Kind: EventProgress, Stage: StageConvert,
				Message: what + " (virtual size): " + r.String(), Percent: pct, Fields: r.Fields()})
		}
	})
	if err != nil {
		return convertFault(ctx, err, p)
	}
	return nil
}

func diskformatDriver(f string) string { return diskformat.Format(f).QemuDriver() }

// qemuIOError matches what qemu-img convert prints when a request fails:
// "error while reading at byte N: M", "error while reading block status at
// offset N: M", "error while writing at byte N: M". N is a guest (virtual)
// byte offset, the same for every layer of the chain.
var qemuIOError = regexp.MustCompile(`error while (reading|writing)( block status)?(?: at)? (?:byte|offset) (\d+): (.+)$`)

// ioError is one failed read or write, as qemu-img reported it.
type ioError struct {
	write  bool
	offset int64
	msg    string // qemu's reason: "Invalid argument"
	line   string // qemu's whole line, without the "qemu-img: " prefix
}

// parseIOError finds the last read or write failure in qemu-img's stderr.
func parseIOError(stderr string) (ioError, bool) {
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		m := qemuIOError.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		off, err := strconv.ParseInt(m[3], 10, 64)
		if err != nil {
			continue
		}
		return ioError{write: m[1] == "writing", offset: off, msg: m[4], line: strings.TrimPrefix(l, "qemu-img: ")}, true
	}
	return ioError{}, false
}

// convertFault explains a failed qemu-img convert. A read failure is about
// the source, at a position in the guest's disk: it names the source file
// and the position, with qemu's reason. A write failure (a full disk) is
// about the output. The command is named, never its argv.
func convertFault(ctx context.Context, err error, p *Plan) error {
	var re *run.Error
	if ctx.Err() != nil || !errors.As(err, &re) {
		return toolFault(ctx, err, p.Output.Path, "qemu-img convert failed")
	}
	io, ok := parseIOError(re.Stderr)
	switch {
	case !ok:
		return fault.Wrap(fault.ToolFailed, p.Output.Path, err, "qemu-img convert failed").
			WithFact("Source", p.Source.Path).
			WithHint("Nothing was written at the output path. qemu-img's message above says what failed.")
	case io.write && strings.Contains(io.msg, "No space left on device"):
		return toolFault(ctx, toolMessage{io.line, err}, p.Output.Path, "cannot write the output")
	case io.write:
		return fault.Wrap(fault.OutputNotWritable, p.Output.Path, toolMessage{io.line, err}, "cannot write the output at byte %d", io.offset).
			WithFact("Command", re.Cmd).
			WithHint("The file system holding the output refused a write. Check it (is it read-only, or failing?), or choose another output.path. Nothing was left at the output path.")
	}
	code, hint := fault.CorruptImage, "The data stored there cannot be decoded: the file is damaged at that position "+
		"(a corrupt compressed grain or grain marker of a streamOptimized VMDK, a truncated copy...), although its headers are valid. "+
		"Copy or export the disk again from its origin and compare checksums. Nothing was written at the output path."
	if strings.Contains(io.msg, "Input/output error") {
		code, hint = fault.SourceUnreadable, "The storage holding the source failed to read that position. "+
			"Check the device or the network file system it is on, then apply again. Nothing was written at the output path."
	}
	fe := fault.Wrap(code, p.Source.Path, toolMessage{io.line, err}, "the source disk cannot be read %s into the guest's disk: %s", position(io.offset, p.Source.VirtualSize), io.msg).
		WithHint("%s", hint).
		WithFact("Position", fmt.Sprintf("byte %d (sector %d) of the guest's disk", io.offset, io.offset/512)).
		WithFact("Command", re.Cmd)
	if len(p.Source.Chain) > 1 {
		fe.WithFact("Chain", strings.Join(p.Source.ChainPaths(), ", ")+" (the position may lie in any of these files)")
	}
	return fe
}

// toolMessage is qemu's own line, standing for the run error it came from
// (whose text repeats the command and exit status).
type toolMessage struct {
	line string
	err  error
}

func (t toolMessage) Error() string { return t.line }

func (t toolMessage) Unwrap() error { return t.err }

// position says where off lies in a disk of size bytes: "3 MiB (37% of 8 MiB)".
func position(off, size int64) string {
	s := sizeText(off)
	if size > 0 {
		s += fmt.Sprintf(" (%.0f%% of %s)", float64(off)*100/float64(size), sizeText(size))
	}
	return s
}

// sizeText renders bytes in binary units: "192 KiB", "1.5 GiB".
func sizeText(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	v := float64(n) / float64(div)
	if v == float64(int64(v)) {
		return fmt.Sprintf("%d %ciB", int64(v), "KMGTPE"[exp])
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGTPE"[exp])
}

// openAppliance starts libguestfs on the drives of one guest (in the
// guest's order) under the engine's accelerator choice.
func (e *Engine) openAppliance(ctx context.Context, workDir string, drives ...guestfs.Drive) (guest.Session, string, error) {
	a, err := e.Accel(ctx)
	if err != nil {
		return nil, "", fault.Wrap(fault.HypervisorFailed, "", err, "cannot decide between KVM and software emulation")
	}
	o := guestfs.Options{TCG: a.Mode == accel.TCG, WorkDir: workDir, Qemu: e.cfg.Qemu, MemoryMiB: 1536}
	if len(drives) == 1 {
		o.Drive, o.Format = drives[0].Path, drives[0].Format
	} else {
		o.Drives = drives
	}
	s, err := guestfs.Open(ctx, o)
	if err != nil {
		if ctx.Err() != nil {
			return nil, "", ctx.Err()
		}
		return nil, "", fault.Wrap(fault.InspectionFailed, drives[0].Path, err, "the libguestfs appliance did not start").
			WithHint("Run libguestfs-test-tool to see why. On machines where nested KVM hangs guests, set the provider's accel = \"tcg\".")
	}
	return s, string(a.Mode), nil
}

// vmSlots are where a VM attached its disks, which is how its guest names
// them; nil for a single disk, which the guest may have had anywhere.
func vmSlots(slots []guest.DiskSlot) []guest.DiskSlot {
	if len(slots) < 2 {
		return nil
	}
	return slots
}

func (j *job) closeSession() error {
	if j.session == nil {
		return nil
	}
	err := j.session.Close()
	if p, ok := j.session.(guest.Profiler); ok {
		j.res.Appliance = append(j.res.Appliance, p.Profile()...)
	}
	j.session = nil
	return err
}

type inspectStage struct{}

func (inspectStage) name() StageName { return StageInspect }

func (inspectStage) run(ctx context.Context, j *job) error {
	var drives []guestfs.Drive
	var slots []guest.DiskSlot
	for _, d := range j.disks {
		drives = append(drives, guestfs.Drive{Path: d.input, Format: d.inputDriver})
		slots = append(slots, d.slot)
	}
	info, why := planInspection(j.plan)
	if info != nil {
		// The plan's warnings, the inspection's among them, are already
		// the result's.
		j.res.Guest = info
		j.emit(EventInfo, StageInspect, why, nil)
		if needsSession(j.plan, info) {
			s, mode, err := j.e.openAppliance(ctx, filepath.Join(j.work, "appliance"), drives...)
			if err != nil {
				return err
			}
			j.session, j.accel = s, mode
			note, err := inspect.Mount(s, info)
			if err != nil {
				return fault.Wrap(fault.InspectionFailed, "", err, "cannot mount the guest's file systems where the plan's inspection found them").
					WithHint("The source matches the plan's fingerprint, yet neither the root the plan recorded nor a fresh detection mounts: check its disks with the vmconv_disk_info data source.")
			}
			if note != "" {
				j.emit(EventWarning, StageInspect, note, nil)
			}
		}
	} else {
		s, mode, err := j.e.openAppliance(ctx, filepath.Join(j.work, "appliance"), drives...)
		if err != nil {
			return err
		}
		j.session, j.accel = s, mode
		if info, err = inspect.Inspect(s, inspect.Options{Root: j.plan.Request.Inspect.Root}); err != nil {
			return err
		}
		info.Disks = vmSlots(slots)
		j.res.Guest = info
		j.res.Warnings = append(j.res.Warnings, info.Warnings...)
	}
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
	var images []string
	for _, d := range j.disks {
		images = append(images, d.tmp)
	}
	// Beside the output (a VM's folder too), where a failed boot leaves it.
	logPath := output.BootLogPath(j.plan.Output.Path)
	res, err := j.e.bootTest(ctx, images, diskformatDriver(j.plan.Output.Format), j.res.Guest, j.plan.Request.BootTest.Options,
		logPath, filepath.Join(j.work, "boot"))
	j.res.BootTest = res
	if err != nil {
		return err
	}
	if !res.Passed() {
		f := fixesOf(j.plan.Request.Fixes)
		return boottest.Error(res, boottest.Site{Fixes: &f, Pattern: j.plan.Request.BootTest.SuccessPattern != ""})
	}
	j.emit(EventInfo, StageValidate, "boot test passed: "+res.Detail, map[string]any{"duration_ms": res.DurationMS, "accel": res.Accel})
	return nil
}

// BootTest boots image under QEMU the way the VALIDATE stage does, for a
// converted output or a domain's disk; more are a VM's other disks, in its
// order.
func (e *Engine) BootTest(ctx context.Context, image, format string, info *guest.Info, o boottest.Options, consoleLog string, more ...string) (*boottest.Result, error) {
	work, err := e.scratch("boot-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	return e.bootTest(ctx, append([]string{image}, more...), format, info, o, consoleLog, work)
}

// bootTest instruments throwaway overlays of a guest's images (the boot
// disk first, then the VM's others in its order) and boots them.
func (e *Engine) bootTest(ctx context.Context, images []string, format string, info *guest.Info, o boottest.Options, consoleLog, work string) (*boottest.Result, error) {
	if err := os.MkdirAll(work, 0o755); err != nil {
		return nil, err
	}
	image := images[0]
	var overlays []string
	var drives []guestfs.Drive
	for i, img := range images {
		overlay := filepath.Join(work, "boot.qcow2")
		if i > 0 {
			overlay = filepath.Join(work, fmt.Sprintf("boot%d.qcow2", i))
		}
		if err := e.qemu.CreateOverlay(ctx, overlay, img, format); err != nil {
			return nil, toolFault(ctx, err, img, "cannot create the boot test overlay")
		}
		overlays = append(overlays, overlay)
		drives = append(drives, guestfs.Drive{Path: overlay, Format: "qcow2"})
	}
	overlay := overlays[0]
	// Every disk is attached: the root may be a volume across them.
	s, mode, err := e.openAppliance(ctx, filepath.Join(work, "appliance"), drives...)
	if err != nil {
		return nil, err
	}
	nonce := boottest.NewNonce()
	var esp *boottest.ESP
	err = func() error {
		defer s.Close()
		if _, err := inspect.Mount(s, info); err != nil {
			return fault.Wrap(fault.BootTestFailed, image, err, "cannot mount the guest to prepare the boot test")
		}
		if err := boottest.Instrument(s, nonce); err != nil {
			return fault.Wrap(fault.BootTestFailed, image, err, "cannot prepare the guest for the boot test")
		}
		if o.Firmware == "" {
			o.Firmware = info.Firmware
		}
		if o.Firmware == "uefi" && o.FirmwareBootEntry != "" {
			for _, f := range info.Filesystems {
				if t, err := s.PartitionType(f.Device); err == nil && strings.EqualFold(t, "C12A7328-F81F-11D2-BA4B-00A0C93EC93B") {
					if p, err := s.PartitionInfo(f.Device); err == nil {
						esp = &boottest.ESP{Number: uint32(p.Number), StartLBA: uint64(p.Start / 512), SizeLBA: uint64(p.Size / 512), GUID: p.GUID}
					}
				}
			}
		}
		return s.Sync()
	}()
	if err != nil {
		return nil, err
	}
	m := boottest.Machine{Qemu: e.cfg.Qemu, Accel: mode, Firmware: boottest.Firmware{Dir: e.cfg.FirmwareDir}, ESP: esp, MoreDisks: overlays[1:]}
	return boottest.Boot(ctx, m, overlay, work, consoleLog, nonce, o)
}
