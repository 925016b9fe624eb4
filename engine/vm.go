package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"

	"github.com/vmconv/terraform-provider-vmconv/engine/boottest"
	"github.com/vmconv/terraform-provider-vmconv/engine/diskformat"
	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/engine/guest"
	"github.com/vmconv/terraform-provider-vmconv/engine/output"
	"github.com/vmconv/terraform-provider-vmconv/engine/source"
)

// Hardware is a whole VM's shape: vCPUs, memory, firmware and NICs.
type Hardware = source.Hardware

// DiskPlan is one disk of a whole-VM plan.
type DiskPlan struct {
	// Device is the slot as the source names it (scsi0:1).
	Device string         `json:"device"`
	Slot   guest.DiskSlot `json:"slot"`
	Source SourcePlan     `json:"source"`
	Output OutputPlan     `json:"output"`
}

// planVM plans a whole VM: every disk's chain checked and measured, one
// image per disk in output.dir, and one inspection of the guest with every
// disk attached in the VM's order.
func (e *Engine) planVM(ctx context.Context, p *Plan, rs *resolvedSource, opts PlanOptions) (*Plan, error) {
	req := p.Request
	dir := req.Output.Dir
	shown, _ := rs.src.Describe(nil)
	p.Source = SourcePlan{Kind: rs.src.Kind(), Path: shown, Fingerprint: rs.fp, Files: rs.stamps}
	p.Hardware, p.Warm = rs.local.Hardware, rs.local.WarmPreview
	// The folder is judged as the apply's BeginSet will judge it.
	// A pool output's staging folder is vmconv's own: what a killed run
	// left there is replaced.
	if err := output.CheckSet(dir, output.SetOptions{Replace: opts.ManagedOutput || req.Output.Overwrite || req.Output.VM}); err != nil {
		return nil, err
	}
	name := vmOutputName(shown)
	switch rs.src.Kind() {
	case "disks":
		name = vmOutputName(dir) // a list has no name of its own
	case "vsphere":
		name = vmOutputName(req.Source.VSphere.VM) // its inventory name or path
	}
	if req.Output.VM {
		switch {
		case req.Output.Volume != "":
			name = req.Output.Volume
		case rs.src.Kind() == "disks":
			name = "vm"
		}
	}
	p.Output = OutputPlan{Path: dir, Format: req.Output.Format, Compression: req.Output.Compression}
	var layers int
	for i, d := range rs.disks {
		o := OutputPlan{Path: filepath.Join(dir, fmt.Sprintf("%s-disk%d.%s", name, i, req.Output.Format)), Format: req.Output.Format, Compression: req.Output.Compression}
		if d.c == nil {
			// Not fetched: planned from its remote end; the chain is read
			// and checked at apply, after FETCH.
			if _, err := os.Lstat(o.Path); err == nil {
				o.Replaces, p.Output.Replaces = true, true
			}
			p.Disks = append(p.Disks, DiskPlan{Device: d.Device, Slot: d.Slot, Output: o, Source: SourcePlan{
				Kind: rs.src.Kind(), Path: d.Shown, Deferred: true, RemoteSize: d.Remote.Length, Fingerprint: d.Remote.Fingerprint}})
			continue
		}
		if err := e.checkChain(ctx, d.c); err != nil {
			return nil, rs.src.Relabel(err)
		}
		p.Warnings = append(p.Warnings, d.c.Warnings...)
		m, err := e.measure(ctx, d.c, req.Output.Format)
		if err != nil {
			return nil, err
		}
		m.Path, m.Compression = o.Path, o.Compression
		o = m
		if err := output.CheckNotSource(o.Path, rs.files()); err != nil {
			return nil, err
		}
		if _, err := os.Lstat(o.Path); err == nil {
			o.Replaces, p.Output.Replaces = true, true
		}
		h, shown := d.c.Head(), d.Shown
		if shown == "" {
			shown = h.Path
		}
		p.Disks = append(p.Disks, DiskPlan{Device: d.Device, Slot: d.Slot, Output: o, Source: SourcePlan{
			Kind: "path", Path: shown, Format: string(h.Format), Subformat: h.Subformat, VirtualSize: d.c.VirtualSize(), Chain: d.c.Layers}})
		p.Output.EstimatedSize += o.EstimatedSize
		p.Output.RequiredSpace += o.RequiredSpace
		p.Output.fullyAllocated += o.fullyAllocated
		layers += len(d.c.Layers)
	}
	p.Output.baseEstimate = p.Output.EstimatedSize
	if req.Fixes.Enabled && !req.Fixes.DryRun && p.Output.Format != string(diskformat.Raw) {
		// The fixes write into the guest (a new initramfs above all) on
		// whichever disk holds the file systems they edit.
		p.Output.FixAllowance = FixAllowance
		p.Output.EstimatedSize += FixAllowance
		p.Output.RequiredSpace += FixAllowance
	}
	if err := output.CheckSpace(filepath.Join(dir, "."), p.Output.RequiredSpace-replacedBytes(p.Disks)); err != nil {
		return nil, err
	}
	fetchPlan := StagePlan{StageFetch, false, "the VM's disks are local files; nothing to fetch"}
	if _, fetched := rs.src.Describe(nil); fetched != "" {
		fetchPlan = StagePlan{StageFetch, true, fetched}
	}
	flatten := StagePlan{StageFlatten, true, fmt.Sprintf("%d disk(s), %d layer(s) in all, each read through a read-only qcow2 overlay", len(p.Disks), layers)}
	if rs.deferred {
		p.Source.Deferred = true
		flatten.Reason = fmt.Sprintf("%d disk(s), each read through a read-only qcow2 overlay; the formats and chains of the disks fetched at apply are read after FETCH", len(p.Disks))
	}
	p.Stages = []StagePlan{
		fetchPlan,
		flatten,
		inspectStagePlan(req),
		fixStagePlan(req),
		{StageConvert, true, fmt.Sprintf("write %d %s image(s) into %s, published together", len(p.Disks), p.Output.Format, dir)},
		bootStagePlan(req),
	}
	if v := p.Stage(StageValidate); v.Run {
		p.Stages[5].Reason += fmt.Sprintf(", with all %d disks attached", len(p.Disks))
	}
	return p, e.planVMGuest(ctx, p, rs, opts)
}

// planVMGuest inspects the guest across every disk once, when the plan may.
func (e *Engine) planVMGuest(ctx context.Context, p *Plan, rs *resolvedSource, opts PlanOptions) error {
	if !p.Stage(StageInspect).Run {
		return nil
	}
	if !opts.Inspect {
		p.Guest = &GuestPlan{How: "skipped", Reason: "plan-time inspection is off (provider plan_inspection = false): the guest is inspected at apply"}
		return nil
	}
	if rs.deferred {
		p.Guest = &GuestPlan{How: "skipped", Reason: "disks of the VM are fetched at apply, so the guest is inspected then (provider plan_fetch = true fetches at plan time)"}
		return nil
	}
	g, err := e.planGuest(ctx, rs.disks, rs.fp, p.Request)
	if err != nil {
		return err
	}
	p.Guest = g
	p.Warnings = append(p.Warnings, g.Warnings...)
	noteInspectionReuse(p, fmt.Sprintf(", all %d disks as one guest", len(p.Disks)))
	if g.Guest != nil && !g.Guest.HasOS() {
		p.Output.EstimatedSize, p.Output.RequiredSpace = p.Output.baseEstimate, p.Output.RequiredSpace-p.Output.FixAllowance
		p.Output.FixAllowance = 0
	}
	for i := range p.Stages {
		if p.Stages[i].Name == StageFix && p.Stages[i].Run {
			switch names := g.PlannedFixes(); {
			case len(names) > 0:
				p.Stages[i].Reason += ": " + strings.Join(names, ", ")
			case g.Reason != "":
				p.Stages[i].Reason = g.Reason
			default:
				p.Stages[i].Reason = "the guest needs no fixes"
			}
		}
	}
	return nil
}

// replacedBytes is what the outputs being replaced free when the new ones
// land.
func replacedBytes(disks []DiskPlan) int64 {
	var n int64
	for _, d := range disks {
		if fi, err := os.Stat(d.Output.Path); err == nil && d.Output.Replaces {
			n += fi.Size()
		}
	}
	return n
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._+-]+`)

// vmOutputName names a VM's images after its source: web.vmx gives
// web-disk0.qcow2, web-disk1.qcow2...
func vmOutputName(shown string) string {
	n := strings.TrimSuffix(filepath.Base(shown), filepath.Ext(shown))
	n = strings.Trim(unsafeName.ReplaceAllString(n, "_"), "._")
	if n == "" {
		return "vm"
	}
	return n
}

// VMReportPath is where the report of the whole VM published at dir lies:
// inside the folder, as a member of its set.
func VMReportPath(dir string) string { return filepath.Join(dir, VMReportName) }

// ReadVMReport loads the report of the whole VM published at dir, which
// records the request, the plan (its disks and hardware) and what Apply
// did. A report that is not a whole VM's is an error.
func ReadVMReport(dir string) (*Report, error) {
	p := VMReportPath(dir)
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("report %s: %w", p, err)
	}
	if r.Plan == nil || r.Result == nil || len(r.Plan.Disks) == 0 || len(r.Result.Disks) != len(r.Plan.Disks) {
		return nil, fmt.Errorf("report %s does not describe a whole VM's conversion (no disks, or a plan and a result that disagree)", p)
	}
	return &r, nil
}

// CheckVMOutput compares a whole VM's published images with the stamps
// taken when they were written (see CheckOutput). It returns DriftMissing
// when the folder itself is gone, and otherwise each disk's drift in the
// order of disks: a deleted image is DriftMissing, a modified one
// DriftChanged.
func CheckVMOutput(dir string, disks []OutputResult) (Drift, []Drift, error) {
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return DriftMissing, nil, nil
	}
	if err != nil {
		return "", nil, err
	}
	if !fi.IsDir() {
		return DriftChanged, nil, nil
	}
	folder := DriftNone
	drifts := make([]Drift, len(disks))
	for i, d := range disks {
		if drifts[i], err = CheckOutput(d.Path, d.Stamp); err != nil {
			return "", nil, err
		}
		if drifts[i] != DriftNone {
			folder = DriftChanged
		}
	}
	return folder, drifts, nil
}

// DeleteVMOutput removes a whole VM's output folder and its boot log,
// under the folder's lock. It deletes only a folder that is a vmconv set
// holding nothing but its members, and refuses while a domain runs on an
// overlay of one of its images; a folder already gone is not an error.
func DeleteVMOutput(dir string) error {
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	if err := checkVMNotHeld(dir); err != nil {
		return err
	}
	return output.RemoveSet(dir, output.BootLogPath(dir))
}

// checkVMNotHeld refuses to delete or replace a VM's images while a domain
// runs on an overlay of one of them: the overlay would lose its backing.
func checkVMNotHeld(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fault.Wrap(fault.OutputNotWritable, dir, err, "cannot list the output folder")
	}
	for _, e := range entries {
		img := filepath.Join(dir, e.Name())
		if holders, err := diskHolders(img); err == nil && len(holders) > 0 {
			return fault.New(fault.DiskInUse, img, "the VM's disk %s is in use by domain %s, which runs on an overlay of it", e.Name(), strings.Join(holders, ", ")).
				WithHint("Destroy the domain first (Terraform does, when the domain refers to this conversion's disks). A disk a running guest depends on is never deleted or replaced under it.")
		}
	}
	return nil
}

// RerunVMBootTest boots the whole VM published at req.Output.Dir again,
// every disk attached, on throwaway overlays, with req's boot test
// settings, and records the result and the settings in the VM's report. A
// boot test that is off, or a VM without an operating system, runs nothing.
func (e *Engine) RerunVMBootTest(ctx context.Context, req Request) (*BootResult, error) {
	if !req.BootTest.Enabled {
		return nil, nil
	}
	dir := req.Output.Dir
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	rep, err := ReadVMReport(dir)
	if err != nil {
		return nil, fault.Wrap(fault.InvalidRequest, VMReportPath(dir), err, "the boot test needs the VM's report in its output folder")
	}
	if rep.Result.Guest == nil || !rep.Result.Guest.HasOS() {
		return nil, nil
	}
	var disks []string
	for _, d := range rep.Result.Disks {
		disks = append(disks, d.Path)
	}
	if len(disks) == 0 {
		return nil, fault.New(fault.InvalidRequest, VMReportPath(dir), "the VM's report lists no disk")
	}
	res, err := e.BootTest(ctx, disks[0], QemuFormat(rep.Plan.Output.Format), rep.Result.Guest, req.BootTest.Options, output.BootLogPath(dir), disks[1:]...)
	if err != nil {
		return nil, err
	}
	if !res.Passed() {
		return nil, boottest.Error(res, rerunSite(rep))
	}
	return res, updateVMReport(dir, func(r *Report) { r.Result.BootTest, r.Plan.Request.BootTest = res, req.BootTest })
}

// updateVMReport changes the report of the VM published at dir, as it is
// under the folder's lock.
func updateVMReport(dir string, change func(*Report)) error {
	var r Report
	err := output.UpdateMember(dir, VMReportName, func(old []byte) ([]byte, error) {
		if err := json.Unmarshal(old, &r); err != nil || r.Plan == nil || r.Result == nil {
			return nil, fault.New(fault.OutputNotWritable, VMReportPath(dir), "the VM's report is not readable (%v)", err)
		}
		change(&r)
		return json.MarshalIndent(&r, "", "  ")
	})
	if err != nil {
		return err
	}
	// A set published before vmconv wrote Markdown reports has none to
	// update.
	err = output.UpdateMember(dir, VMMarkdownName, func([]byte) ([]byte, error) { return []byte(r.Markdown()), nil })
	if fault.Is(err, fault.Internal) {
		return nil
	}
	return err
}

// RecordVMHardware reads the hardware of the VM req names from its source
// again (nothing is copied) and, when it differs from what the report in
// req.Output.Dir records, records it there: the report covers the VM as
// it is now, also after a change to its hardware alone updated the
// conversion in place.
func (e *Engine) RecordVMHardware(ctx context.Context, req Request) (*Hardware, error) {
	var err error
	if req.Output.Pool != "" {
		// A set in a pool has no output folder to check: only the source.
		req.Source, err = req.Source.Normalize()
	} else {
		req, err = normalize(req)
	}
	if err != nil {
		return nil, err
	}
	env := e.sourceEnv(nil)
	env.WholeVM = true
	src := source.Select(req.Source, env)
	l, _, err := src.Locate(ctx, false)
	if err != nil {
		return nil, src.Relabel(err)
	}
	if l == nil {
		return nil, nil
	}
	if req.Output.Pool != "" {
		return l.Hardware, e.recordPoolHardware(ctx, req.Output.Pool, req.Output.Volume, l.Hardware)
	}
	rep, err := ReadVMReport(req.Output.Dir)
	if err != nil {
		return nil, fault.Wrap(fault.InvalidRequest, VMReportPath(req.Output.Dir), err, "cannot read the VM's report")
	}
	if reflect.DeepEqual(rep.Plan.Hardware, l.Hardware) {
		return l.Hardware, nil
	}
	return l.Hardware, updateVMReport(req.Output.Dir, func(r *Report) { r.Plan.Hardware = l.Hardware })
}
