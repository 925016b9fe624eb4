package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/vmconv/terraform-provider-vmconv/engine/chain"
	"github.com/vmconv/terraform-provider-vmconv/engine/diskformat"
	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/engine/fingerprint"
	"github.com/vmconv/terraform-provider-vmconv/engine/internal/qemuimg"
	"github.com/vmconv/terraform-provider-vmconv/engine/internal/room"
	"github.com/vmconv/terraform-provider-vmconv/engine/internal/run"
	"github.com/vmconv/terraform-provider-vmconv/engine/output"
	"github.com/vmconv/terraform-provider-vmconv/engine/ovf"
	"github.com/vmconv/terraform-provider-vmconv/engine/vmdk"
)

// PlanFormatVersion is bumped when the plan's JSON changes incompatibly.
const PlanFormatVersion = 1

// StageName names a pipeline stage.
type StageName string

const (
	StageFetch    StageName = "fetch"
	StageFlatten  StageName = "flatten"
	StageInspect  StageName = "inspect"
	StageFix      StageName = "fix"
	StageConvert  StageName = "convert"
	StageValidate StageName = "validate"
)

// Stages lists the pipeline in order.
var Stages = []StageName{StageFetch, StageFlatten, StageInspect, StageFix, StageConvert, StageValidate}

// StagePlan says whether a stage will run, and why.
type StagePlan struct {
	Name   StageName `json:"name"`
	Run    bool      `json:"run"`
	Reason string    `json:"reason"`
}

// SourcePlan is what the source was found to be.
type SourcePlan struct {
	Kind        string         `json:"kind"`
	Path        string         `json:"path"`
	Format      string         `json:"format"`
	Subformat   string         `json:"subformat,omitempty"`
	VirtualSize int64          `json:"virtual_size"`
	Fingerprint string         `json:"fingerprint"`
	Chain       []*chain.Layer `json:"chain"`
	// OVF is the archive's descriptor, for an OVA source: the VM's CPUs,
	// memory, firmware and NICs.
	OVF *ovf.OVF `json:"ovf,omitempty"`
	// Deferred is set when a remote source was planned from its metadata
	// alone: format, chain and sizes are learnt at apply, after FETCH.
	Deferred bool `json:"deferred,omitempty"`
	// RemoteSize is a remote source's length, from the server.
	RemoteSize int64 `json:"remote_size,omitempty"`
	// Files are the stamps (size, modification time, sampled content) of
	// the local files the fingerprint covers, by path.
	Files map[string]fingerprint.Stamp `json:"files,omitempty"`
}

// ChainPaths lists the chain's layers, newest first.
func (s SourcePlan) ChainPaths() []string {
	out := make([]string, len(s.Chain))
	for i, l := range s.Chain {
		out[i] = l.Path
	}
	return out
}

// OutputPlan is what will be written.
type OutputPlan struct {
	Path        string `json:"path"`
	Format      string `json:"format"`
	Compression bool   `json:"compression"`
	// EstimatedSize is the expected size of the output file. For raw it is
	// exact (the virtual size; the file is sparse). For qcow2 it is an upper
	// bound from qemu-img measure; see docs/plan.md for the bound.
	EstimatedSize int64 `json:"estimated_size"`
	// RequiredSpace is the free space the conversion needs.
	RequiredSpace int64 `json:"required_space"`
	// FixAllowance is the part of the estimate kept for what the fixes
	// write into the guest (FixAllowance bytes when they run).
	FixAllowance int64 `json:"fix_allowance,omitempty"`
	// fullyAllocated caps the estimate: a qcow2 never exceeds it.
	fullyAllocated, baseEstimate int64
	// Replaces is set when an existing file will be overwritten.
	Replaces bool `json:"replaces"`
	// Volume is set when the image is published into a storage pool;
	// Path is then the private staging file it is converted into.
	Volume *VolumePlan `json:"volume,omitempty"`
}

// FixAllowance is what the estimate adds when the fixes run: a regenerated
// initramfs per kernel (tens of MiB each) and the edited files.
const FixAllowance int64 = 256 << 20

// Plan is the engine's decision: everything Apply will do, made before a
// byte moves. It is plain data and round-trips through JSON.
type Plan struct {
	FormatVersion int         `json:"format_version"`
	Request       Request     `json:"request"`
	Source        SourcePlan  `json:"source"`
	Output        OutputPlan  `json:"output"`
	Stages        []StagePlan `json:"stages"`
	// Guest is the plan-time inspection and the fixes' dry run; nil when
	// no stage needs the guest.
	Guest    *GuestPlan `json:"guest,omitempty"`
	Warnings []string   `json:"warnings"`
	// Disks are every disk of a whole-VM plan (output.dir), in the order
	// the VM attaches them; then Source describes the VM and Output the
	// folder, with the disks' sizes summed. Nil for a single disk.
	Disks []DiskPlan `json:"disks,omitempty"`
	// Hardware is a whole VM's shape, as its source describes it.
	Hardware *Hardware `json:"hardware,omitempty"`
	// Warm is what the next sync of a warm migration will copy.
	Warm *WarmPreview `json:"warm,omitempty"`
}

// Firmware is the guest's firmware as inspected at plan time, or "".
func (p *Plan) Firmware() string {
	if p.Guest == nil || p.Guest.Guest == nil {
		return ""
	}
	return p.Guest.Guest.Firmware
}

// Stage returns the plan for one stage.
func (p *Plan) Stage(n StageName) StagePlan {
	for _, s := range p.Stages {
		if s.Name == n {
			return s
		}
	}
	return StagePlan{Name: n}
}

// RunningStages lists the stages that will run.
func (p *Plan) RunningStages() []string {
	var out []string
	for _, s := range p.Stages {
		if s.Run {
			out = append(out, string(s.Name))
		}
	}
	return out
}

// JSON renders the plan for review.
func (p *Plan) JSON() ([]byte, error) { return json.MarshalIndent(p, "", "  ") }

// ParsePlan reads a plan written by JSON.
func ParsePlan(b []byte) (*Plan, error) {
	var p Plan
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// PlanOptions qualify a Plan call.
type PlanOptions struct {
	// ManagedOutput says the file at the output path belongs to the caller
	// (a previous apply of the same resource), so it may be replaced.
	ManagedOutput bool
	// Inspect lets the plan launch the libguestfs appliance to inspect the
	// guest and dry-run the fixes, once per source fingerprint (cached).
	// Without it the plan decides from metadata alone.
	Inspect bool
	// Fetch lets the plan download a remote source (into the cache) so it
	// is planned like a local one. Without it a remote source that is not
	// downloaded yet is planned from the server's metadata.
	Fetch bool
	// Creates says the plan is for an output its resource does not have
	// yet: a new one, or the replacement of one. The cache entries its
	// source uses are kept for its apply (ReleaseSource).
	Creates bool
}

// Plan decides what Apply will do. It reads the source's metadata, never
// its data, and writes nothing but scratch files under the work folder.
func (e *Engine) Plan(ctx context.Context, req Request, opts PlanOptions) (*Plan, error) {
	p, err := e.planOutput(ctx, req, opts)
	if err == nil {
		p.noteSizes()
	}
	return p, err
}

// noteSizes ends the convert stage's reason with the sizes, in the units a
// person reads: the plan's size attributes are bytes. A remote source not
// fetched yet has none.
func (p *Plan) noteSizes() {
	virtual := p.Source.VirtualSize
	for _, d := range p.Disks {
		virtual += d.Source.VirtualSize
	}
	if p.Source.Deferred || virtual == 0 || p.Output.EstimatedSize == 0 {
		return
	}
	for i := range p.Stages {
		if p.Stages[i].Name == StageConvert {
			p.Stages[i].Reason += fmt.Sprintf(" (%s of disk, at most %s written)", room.Human(virtual), room.Human(p.Output.EstimatedSize))
		}
	}
}

func (e *Engine) planOutput(ctx context.Context, req Request, opts PlanOptions) (*Plan, error) {
	if v := req.Source.VSphere; v != nil && v.Warm != nil && req.Output.Pool != "" {
		// Its downtime runs to the images published; an upload to the
		// host after the cutover would add to it unmeasured.
		return nil, fault.New(fault.InvalidRequest, req.Output.Pool, "a warm migration publishes into output.dir, not into a storage pool").
			WithHint("Set output.dir, and define the domain's disks from the images there.")
	}
	if req.Output.Pool == "" && req.Output.Volume == "" {
		return e.plan(ctx, req, opts)
	}
	vp, err := e.planVolume(ctx, &req, opts)
	if err != nil {
		return nil, err
	}
	p, err := e.plan(ctx, req, opts)
	if err != nil {
		return nil, err
	}
	p.Output.Volume = vp
	reason := fmt.Sprintf("write %s to a staging file, upload it (holes kept) to pool %s on %s as volume %s, then delete the staging file", p.Output.Format, vp.Pool, vp.URI, vp.Name)
	if req.Output.VM {
		if err := e.checkVMVolumes(ctx, p, opts); err != nil {
			return nil, err
		}
		reason = fmt.Sprintf("write %s to staging files, upload them (holes kept) to pool %s on %s as volumes %s, published together, then delete the staging files",
			p.Output.Format, vp.Pool, vp.URI, strings.Join(vp.Disks, ", "))
	}
	for i := range p.Stages {
		if p.Stages[i].Name == StageConvert {
			p.Stages[i].Reason = reason
		}
	}
	if !p.Source.Deferred {
		if err := checkVolumeSpace(p); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func (e *Engine) plan(ctx context.Context, req Request, opts PlanOptions) (*Plan, error) {
	req, err := normalize(req)
	if err != nil {
		return nil, err
	}
	p := &Plan{FormatVersion: PlanFormatVersion, Request: req}

	// FETCH and FLATTEN: make the source local, resolve and validate the
	// whole chain.
	owner := ""
	if opts.Creates {
		owner = ownerOf(req.Output)
	}
	rs, err := e.resolveSource(ctx, req.Source, req.Output.Dir != "", opts.Fetch, nil, newCacheHolds(ctx, owner, true))
	if err != nil {
		return nil, err
	}
	if rs.remote != nil {
		return e.deferredPlan(p, req, rs, opts)
	}
	if req.Output.Dir != "" {
		return e.planVM(ctx, p, rs, opts)
	}
	if err := e.checkChain(ctx, rs.c); err != nil {
		return nil, rs.src.Relabel(err)
	}
	c, fp := rs.c, rs.fp
	p.Warnings = append(p.Warnings, c.Warnings...)
	p.Source = SourcePlan{
		Kind: "path", Path: c.Head().Path, Format: string(c.Head().Format), Subformat: c.Head().Subformat,
		VirtualSize: c.VirtualSize(), Fingerprint: fp, Chain: c.Layers, Files: rs.stamps,
	}
	fetchPlan := StagePlan{StageFetch, false, "the source is a local file; nothing to fetch"}
	if kind := rs.src.Kind(); kind != "path" {
		shown, fetched := rs.src.Describe(nil)
		p.Source.Kind, p.Source.Path = kind, shown
		fetchPlan = StagePlan{StageFetch, true, fetched}
		if rs.local.Note != "" {
			fetchPlan.Reason += "; " + rs.local.Note
		}
	}
	p.Source.OVF = rs.local.OVF

	// The output: where, whether it may be written, how big it will be.
	if err := e.checkOutputPath(req, rs.files(), opts); err != nil {
		return nil, err
	}
	if _, err := os.Lstat(req.Output.Path); err == nil {
		p.Output.Replaces = true
	}
	p.Output.Path, p.Output.Format, p.Output.Compression = req.Output.Path, req.Output.Format, req.Output.Compression
	if err := e.estimate(ctx, c, p); err != nil {
		return nil, err
	}
	if req.Fixes.Enabled && !req.Fixes.DryRun && p.Output.Format != string(diskformat.Raw) {
		// The fixes write into the guest (a new initramfs above all), and
		// those blocks end up in the output on top of the source's.
		p.Output.FixAllowance, p.Output.baseEstimate = FixAllowance, p.Output.EstimatedSize
		p.Output.EstimatedSize = min(p.Output.EstimatedSize+FixAllowance, max(p.Output.fullyAllocated, p.Output.EstimatedSize))
		p.Output.RequiredSpace += FixAllowance
	}
	need := p.Output.RequiredSpace
	if p.Output.Replaces {
		if fi, err := os.Stat(req.Output.Path); err == nil {
			need -= fi.Size() // the old output is removed when the new one lands
		}
	}
	if err := output.CheckSpace(req.Output.Path, need); err != nil {
		return nil, err
	}

	p.Stages = []StagePlan{
		fetchPlan,
		{StageFlatten, true, flattenReason(c)},
		inspectStagePlan(req),
		fixStagePlan(req),
		{StageConvert, true, convertReason(p) + rawReason(req, c)},
		bootStagePlan(req),
	}
	if p.Stage(StageInspect).Run {
		if !opts.Inspect {
			p.Guest = &GuestPlan{How: "skipped", Reason: "plan-time inspection is off (provider plan_inspection = false): the guest is inspected at apply"}
		} else {
			g, err := e.planGuest(ctx, rs.disks, fp, req)
			if err != nil {
				return nil, err
			}
			p.Guest = g
			p.Warnings = append(p.Warnings, g.Warnings...)
			noteInspectionReuse(p, "")
			if g.Guest != nil && !g.Guest.HasOS() {
				// A data disk: nothing will be written to it.
				p.Output.EstimatedSize = p.Output.baseEstimate
				p.Output.RequiredSpace -= p.Output.FixAllowance
				p.Output.FixAllowance = 0
			}
			for i := range p.Stages {
				if p.Stages[i].Name == StageFix && p.Stages[i].Run {
					if names := g.PlannedFixes(); len(names) > 0 {
						p.Stages[i].Reason += ": " + strings.Join(names, ", ")
					} else if g.Reason != "" {
						p.Stages[i].Reason = g.Reason
					} else {
						p.Stages[i].Reason = "the guest needs no fixes"
					}
				}
			}
		}
	}
	return p, nil
}

// deferredPlan plans a remote source that is not fetched yet from what its
// remote end reports.
func (e *Engine) deferredPlan(p *Plan, req Request, rs *resolvedSource, opts PlanOptions) (*Plan, error) {
	shown, fetch := rs.src.Describe(rs.remote)
	p.Source = SourcePlan{Kind: rs.src.Kind(), Path: shown, Fingerprint: rs.fp, Deferred: true, RemoteSize: rs.remote.Length}
	if err := e.checkOutputPath(req, nil, opts); err != nil {
		return nil, err
	}
	p.Output.Path, p.Output.Format, p.Output.Compression = req.Output.Path, req.Output.Format, req.Output.Compression
	p.Stages = []StagePlan{
		{StageFetch, true, fetch},
		{StageFlatten, true, "the format and chain are read after FETCH"},
		inspectStagePlan(req), fixStagePlan(req), {StageConvert, true, convertReason(p)}, bootStagePlan(req),
	}
	if p.Stage(StageInspect).Run {
		p.Guest = &GuestPlan{How: "skipped", Reason: "a remote source is planned from its metadata; the guest is inspected at apply (provider plan_fetch = true fetches at plan time)"}
	}
	return p, nil
}

// checkOutputPath refuses outputs that would destroy something.
func (e *Engine) checkOutputPath(req Request, sources []string, opts PlanOptions) error {
	if err := output.CheckDir(req.Output.Path); err != nil {
		return err
	}
	if err := output.CheckNotSource(req.Output.Path, sources); err != nil {
		return err
	}
	if !opts.ManagedOutput {
		return output.CheckFree(req.Output.Path, req.Output.Overwrite)
	}
	return nil
}

func inspectStagePlan(req Request) StagePlan {
	if !req.Fixes.Enabled && !req.BootTest.Enabled {
		return StagePlan{StageInspect, false, "fixes and boot test are off: nothing needs the guest inspected"}
	}
	return StagePlan{StageInspect, true, "find the guest operating system with libguestfs, in the appliance the fixes then use"}
}

func fixStagePlan(req Request) StagePlan {
	switch {
	case !req.Fixes.Enabled:
		return StagePlan{StageFix, false, "fixes.enabled is false"}
	case req.Fixes.DryRun:
		return StagePlan{StageFix, true, "dry run: record the fixes the guest needs without writing them"}
	}
	return StagePlan{StageFix, true, "fix the guest offline, in an overlay, so it boots on KVM"}
}

func bootStagePlan(req Request) StagePlan {
	b := req.BootTest
	switch {
	case !b.Enabled:
		return StagePlan{StageValidate, false, "boot_test.enabled is false"}
	case req.Fixes.Enabled && req.Fixes.DryRun:
		return StagePlan{StageValidate, false, "fixes.dry_run: the output is not fixed, so a boot test would only show that"}
	}
	bus, nic := b.DiskBus, b.NICModel
	if bus == "" {
		bus = "virtio"
	}
	if nic == "" {
		nic = "virtio"
	}
	return StagePlan{StageValidate, true, fmt.Sprintf("boot a throwaway overlay of the output under QEMU on a %s disk with a %s NIC", bus, nic)}
}

func flattenReason(c *chain.Chain) string {
	if len(c.Layers) == 1 {
		return "one layer; read through a read-only qcow2 overlay"
	}
	return fmt.Sprintf("%d layers merged newest first through a read-only qcow2 overlay", len(c.Layers))
}

// rawReason says when CONVERT will copy in the kernel instead of running
// qemu-img (see rawSegments): it depends on the guest not being written
// first, which only the apply knows for sure when the appliance runs.
func rawReason(req Request, c *chain.Chain) string {
	if _, ok := rawCopyable(req.Output.Format, c); !ok {
		return ""
	}
	if req.Fixes.Enabled && !req.Fixes.DryRun {
		return "; the fixes write into the guest, so qemu-img converts it (a disk without an operating system, which nothing writes, is copied in the kernel)"
	}
	s := "; the source is stored raw: its data ranges are copied in the kernel (copy_file_range), holes kept"
	if req.Fixes.Enabled || req.BootTest.Enabled {
		s += ", unless mounting the guest for inspection wrote to it (a journal replayed), which qemu-img then converts"
	}
	return s
}

func convertReason(p *Plan) string {
	s := fmt.Sprintf("write %s to %s", p.Output.Format, p.Output.Path)
	if p.Output.Compression {
		s += " with compression"
	}
	return s
}

// estimate sizes the output with qemu-img measure on the shadow chain.
func (e *Engine) estimate(ctx context.Context, c *chain.Chain, p *Plan) error {
	o, err := e.measure(ctx, c, p.Output.Format)
	if err != nil {
		return err
	}
	p.Output.RequiredSpace, p.Output.fullyAllocated, p.Output.EstimatedSize = o.RequiredSpace, o.fullyAllocated, o.EstimatedSize
	return nil
}

// measure sizes one disk's output in format: the file's expected size and
// the space its conversion needs.
func (e *Engine) measure(ctx context.Context, c *chain.Chain, format string) (OutputPlan, error) {
	dir, err := e.scratch("plan-")
	if err != nil {
		return OutputPlan{}, err
	}
	defer os.RemoveAll(dir)
	top, driver, err := c.Materialize(ctx, dir, e.qemu)
	if err != nil {
		return OutputPlan{}, err
	}
	m, err := e.qemu.Measure(ctx, top, driver, "qcow2", false)
	if err != nil {
		return OutputPlan{}, toolFault(ctx, err, c.Head().Path, "qemu-img cannot measure the source")
	}
	o := OutputPlan{Format: format, RequiredSpace: m.Required, fullyAllocated: m.FullyAllocated, EstimatedSize: m.Required}
	if format == "raw" {
		o.EstimatedSize = c.VirtualSize()
	}
	return o, nil
}

// checkTarget is one file qemu-img check can open on its own.
type checkTarget struct {
	path, driver, what string
}

// checkTargets lists the files of a layer that qemu-img 7.2 can check on
// their own: qcow2, VDI and VHDX images, and VMDKs that are one sparse
// file with their descriptor inside (monolithicSparse, streamOptimized).
// qemu cannot open a split sparse extent or a vmfsSparse (COWD) delta
// without its descriptor (it fails with "Invalid argument" looking for the
// CID), nor an seSparse extent or a flat one; VHD (vpc) and raw have no
// check. Those rely on the header parsers alone, which check what qemu's
// vmdk check does (every grain inside the file) and more.
func checkTargets(l *chain.Layer) []checkTarget {
	switch l.Format {
	case diskformat.QCOW2, diskformat.VDI, diskformat.VHDX:
		return []checkTarget{{l.Path, string(l.Format), string(l.Format) + " image"}}
	case diskformat.VMDK:
		if len(l.Extents) == 1 && l.Extents[0].Type == vmdk.ExtentSparse && sameFile(l.Extents[0].Path, l.Path) {
			return []checkTarget{{l.Path, "vmdk", "sparse VMDK"}}
		}
	}
	return nil
}

func sameFile(a, b string) bool {
	fa, errA := os.Stat(a)
	fb, errB := os.Stat(b)
	return errA == nil && errB == nil && os.SameFile(fa, fb)
}

// checkChain runs `qemu-img check` on every file of the chain that qemu
// can check, before any data moves: it finds what the header parsers do
// not model, such as refcounts that disagree with the tables. Each check
// opens exactly one file, with the driver pinned and no backing file (see
// qemuimg.CheckSpec). Corruption refuses the source; leaked clusters alone
// are harmless and only warned about.
func (e *Engine) checkChain(ctx context.Context, c *chain.Chain) error {
	if c == nil {
		return nil
	}
	for _, l := range c.Layers {
		for _, t := range checkTargets(l) {
			path := t.path
			if real, err := filepath.EvalSymlinks(path); err == nil {
				path = real
			}
			if abs, err := filepath.Abs(path); err == nil {
				path = abs
			}
			res, err := e.qemu.Check(ctx, path, t.driver)
			if errors.Is(err, qemuimg.ErrCheckUnsupported) {
				continue
			}
			if err != nil {
				if ctx.Err() != nil {
					return fault.Wrap(fault.Cancelled, t.path, ctx.Err(), "the image check was cancelled")
				}
				fe := fault.Wrap(fault.ToolFailed, t.path, err, "qemu-img could not check this %s", t.what).
					WithHint("qemu-img could not open the file to check it: it is damaged in a way vmconv's own checks did not catch, or it is locked by a running VM. Close whatever uses it and retry, or restore the file from its original.")
				var re *run.Error
				if errors.As(err, &re) && re.Stderr != "" {
					fe = fe.WithFact("qemu-img", re.Stderr)
				}
				return fe
			}
			if res.Corrupt() {
				fe := fault.New(fault.CorruptImage, t.path,
					"qemu-img check found %d corruptions and %d check errors in this %s", res.Corruptions, res.CheckErrors, t.what).
					WithHint("The image's metadata is damaged, so converting it would produce a wrong disk. "+
						"Restore the file from its original, or repair a copy with `qemu-img check -r all -f %s` and convert the repaired copy.", t.driver).
					WithFact("Structure", t.what+" metadata checked by qemu-img check -f "+t.driver)
				for _, f := range res.Findings {
					fe = fe.WithFact("qemu-img check", f)
				}
				return fe
			}
			if res.Leaks > 0 {
				c.Warnings = append(c.Warnings, fmt.Sprintf("%s: qemu-img check found %d leaked clusters (allocated but unused space; harmless to the data)",
					filepath.Base(t.path), res.Leaks))
			}
		}
	}
	return nil
}
