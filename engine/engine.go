// Package engine converts VM disks for KVM. It works in two steps: Plan
// inspects the request and decides everything (formats, chain, stages,
// sizes) without writing a byte, and Apply executes a Plan, reporting
// progress as Events. The engine is a library: it never imports Terraform
// packages, and the provider is a thin adapter over it.
package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/vmconv/terraform-provider-vmconv/engine/accel"
	"github.com/vmconv/terraform-provider-vmconv/engine/chain"
	"github.com/vmconv/terraform-provider-vmconv/engine/diskformat"
	"github.com/vmconv/terraform-provider-vmconv/engine/domain"
	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/engine/fingerprint"
	"github.com/vmconv/terraform-provider-vmconv/engine/internal/qemuimg"
	"github.com/vmconv/terraform-provider-vmconv/engine/output"
	"github.com/vmconv/terraform-provider-vmconv/engine/source"
)

// Config configures an Engine. Zero values pick sensible defaults.
type Config struct {
	// WorkDir holds overlays and shadow descriptors during a conversion.
	WorkDir string
	// CacheDir holds results worth keeping between runs.
	CacheDir string
	// MaxParallel bounds how many conversions run at once in this process.
	MaxParallel int
	// QemuImg is the qemu-img binary.
	QemuImg string
	// Qemu is the system emulator used for boot tests and the appliance.
	Qemu string
	// Accel is auto (probe), kvm or tcg.
	Accel string
	// FirmwareDir holds the OVMF UEFI firmware.
	FirmwareDir string
	// LibvirtURI is where domains are defined (default qemu:///system).
	LibvirtURI string
	// DomainDir holds domains' own disks (default /var/lib/vmconv/domains).
	DomainDir string
}

// DefaultMaxParallel is the default number of concurrent conversions: half
// the CPUs, at least one and at most four. Conversions are mostly bound by
// storage, where more parallel streams only add seeking.
func DefaultMaxParallel() int {
	return min(4, max(1, runtime.NumCPU()/2))
}

// Engine plans and applies conversions.
type Engine struct {
	cfg  Config
	qemu qemuimg.Tool
	sem  chan struct{}

	accelOnce sync.Once
	accelRes  accel.Result
	accelErr  error

	hvMu sync.Mutex
	hv   domain.Hypervisor

	// inspecting deduplicates concurrent plan-time inspections of one
	// source: Terraform plans many resources at once.
	inspectMu  sync.Mutex
	inspecting map[string]*inflight
}

type inflight struct {
	done chan struct{}
	g    *GuestPlan
	err  error
}

// Accel resolves (once) whether guests run under KVM or TCG.
func (e *Engine) Accel(ctx context.Context) (accel.Result, error) {
	e.accelOnce.Do(func() {
		e.accelRes, e.accelErr = accel.Resolve(ctx, e.cfg.Accel, accel.Options{Qemu: e.cfg.Qemu, CacheDir: e.cfg.CacheDir})
	})
	return e.accelRes, e.accelErr
}

// New returns an Engine. It checks the tools it needs are installed.
func New(cfg Config) (*Engine, error) {
	if cfg.MaxParallel <= 0 {
		cfg.MaxParallel = DefaultMaxParallel()
	}
	if cfg.WorkDir == "" {
		cfg.WorkDir = filepath.Join(os.TempDir(), "vmconv")
	}
	if cfg.CacheDir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			base = os.TempDir()
		}
		cfg.CacheDir = filepath.Join(base, "vmconv")
	}
	q := qemuimg.Exec{Path: cfg.QemuImg}
	if err := q.Available(); err != nil {
		return nil, fault.Wrap(fault.ToolMissing, "qemu-img", err, "qemu-img is not installed").
			WithHint("Install qemu-utils (Debian/Ubuntu: apt-get install qemu-utils), or run tools/setup.")
	}
	return &Engine{cfg: cfg, qemu: q, sem: make(chan struct{}, cfg.MaxParallel)}, nil
}

// Config returns the effective configuration.
func (e *Engine) Config() Config { return e.cfg }

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
}

// Plan decides what Apply will do. It reads the source's metadata, never
// its data, and writes nothing but scratch files under the work folder.
func (e *Engine) Plan(ctx context.Context, req Request, opts PlanOptions) (*Plan, error) {
	req, err := normalize(req)
	if err != nil {
		return nil, err
	}
	p := &Plan{FormatVersion: PlanFormatVersion, Request: req}

	// FETCH and FLATTEN: make the source local, resolve and validate the
	// whole chain.
	rs, err := e.resolveSource(ctx, req.Source, opts.Fetch, nil)
	if err != nil {
		return nil, err
	}
	if rs.remote != nil {
		return e.deferredPlan(p, req, rs, opts)
	}
	if err := e.checkChain(ctx, rs.c); err != nil {
		return nil, rs.src.Relabel(err)
	}
	c, fp := rs.c, rs.fp
	p.Warnings = append(p.Warnings, c.Warnings...)
	p.Source = SourcePlan{
		Kind: "path", Path: c.Head().Path, Format: string(c.Head().Format), Subformat: c.Head().Subformat,
		VirtualSize: c.VirtualSize(), Fingerprint: fp, Chain: c.Layers,
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
		{StageConvert, true, convertReason(p)},
		bootStagePlan(req),
	}
	if p.Stage(StageInspect).Run {
		if !opts.Inspect {
			p.Guest = &GuestPlan{How: "skipped", Reason: "plan-time inspection is off (provider plan_inspection = false): the guest is inspected at apply"}
		} else {
			g, err := e.planGuest(ctx, c, fp, req)
			if err != nil {
				return nil, err
			}
			p.Guest = g
			p.Warnings = append(p.Warnings, g.Warnings...)
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

type resolvedSource struct {
	src   source.Source
	c     *chain.Chain
	local *source.Local
	fp    string
	// remote is set when a remote source was not fetched: plan from it.
	remote *source.Remote
}

// sourceEnv is what the sources need from the engine; their messages go to
// the sink as FETCH events.
func (e *Engine) sourceEnv(sink Sink) source.Env {
	return source.Env{CacheDir: e.cfg.CacheDir, Log: fetchLog{sink}}
}

// fetchLog turns the transports' messages (URLs redacted, no header
// values) into FETCH events.
type fetchLog struct{ sink Sink }

func (l fetchLog) Log(level, msg string, f map[string]any) {
	if l.sink != nil {
		l.sink.Event(Event{Kind: EventInfo, Stage: StageFetch, Message: msg, Fields: f})
	}
}

// resolveSource makes the source local (an OVA's disk is extracted into
// the cache; a remote disk is copied into it when fetchNow or found there)
// and resolves its chain. The fingerprint is the source's own when it has
// one (an archive's, a remote object's), the chain's files' otherwise.
// Faults name what the user wrote, never a cache file.
func (e *Engine) resolveSource(ctx context.Context, spec SourceSpec, fetchNow bool, sink Sink) (_ *resolvedSource, err error) {
	rs := &resolvedSource{src: source.Select(spec, e.sourceEnv(sink))}
	defer func() { err = rs.src.Relabel(err) }()
	rs.local, rs.remote, err = rs.src.Locate(ctx, fetchNow)
	if err != nil {
		return nil, err
	}
	if rs.remote != nil {
		rs.fp = rs.remote.Fingerprint
		return rs, nil
	}
	c, err := chain.Resolve(rs.local.Head, chain.Options{
		Format:                 diskformat.Format(spec.Format),
		AllowParentCIDMismatch: spec.AllowParentCIDMismatch,
	})
	if err != nil {
		return nil, err
	}
	rs.c, rs.fp = c, rs.local.Fingerprint
	if rs.fp == "" {
		if rs.fp, _, err = fingerprint.Files(filePaths(c)); err != nil {
			return nil, fault.Wrap(fault.SourceUnreadable, c.Head().Path, err, "cannot fingerprint the source")
		}
	}
	return rs, nil
}

// files are the files an output must never overwrite.
func (rs *resolvedSource) files() []string {
	return append(filePaths(rs.c), rs.src.Protected()...)
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

func convertReason(p *Plan) string {
	s := fmt.Sprintf("write %s to %s", p.Output.Format, p.Output.Path)
	if p.Output.Compression {
		s += " with compression"
	}
	return s
}

func filePaths(c *chain.Chain) []string {
	var out []string
	for _, f := range c.Files() {
		out = append(out, f.Path)
	}
	return out
}

// estimate sizes the output with qemu-img measure on the shadow chain.
func (e *Engine) estimate(ctx context.Context, c *chain.Chain, p *Plan) error {
	dir, err := e.scratch("plan-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	top, driver, err := c.Materialize(ctx, dir, e.qemu)
	if err != nil {
		return err
	}
	m, err := e.qemu.Measure(ctx, top, driver, "qcow2", false)
	if err != nil {
		return toolFault(ctx, err, c.Head().Path, "qemu-img cannot measure the source")
	}
	p.Output.RequiredSpace = m.Required
	p.Output.fullyAllocated = m.FullyAllocated
	switch p.Output.Format {
	case "raw":
		p.Output.EstimatedSize = c.VirtualSize()
	default:
		p.Output.EstimatedSize = m.Required
	}
	return nil
}

// toolFault classifies a failed tool run.
func toolFault(ctx context.Context, err error, file, msg string) error {
	if ctx.Err() != nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fault.Wrap(fault.Cancelled, file, ctx.Err(), "cancelled").WithHint("The operation was interrupted or timed out; nothing was written at the output path.")
	}
	if fe, ok := fault.As(err); ok {
		return fe
	}
	if strings.Contains(err.Error(), "No space left on device") {
		return fault.Wrap(fault.NoSpace, file, err, "the output file system ran out of space").
			WithHint("Free space where the output goes, or choose another output.path. Nothing was left at the output path.")
	}
	return fault.Wrap(fault.ToolFailed, file, err, "%s", msg)
}

func normalize(req Request) (Request, error) {
	src, err := req.Source.Normalize()
	if err != nil {
		return req, err
	}
	req.Source = src
	if req.Output.Path == "" {
		return req, fault.New(fault.InvalidRequest, "", "no output path is set").WithHint("Set output.path.")
	}
	abs, err := filepath.Abs(req.Output.Path)
	if err != nil {
		return req, fault.Wrap(fault.InvalidRequest, req.Output.Path, err, "invalid output path")
	}
	req.Output.Path = abs
	if req.Output.Format == "" {
		req.Output.Format = string(diskformat.QCOW2)
	}
	if !slices.Contains(diskformat.Outputs, diskformat.Format(req.Output.Format)) {
		return req, fault.New(fault.InvalidRequest, req.Output.Path, "output format %q is not supported", req.Output.Format).
			WithHint("Use one of: qcow2, raw, vdi, vhdx.")
	}
	if req.Output.Compression && req.Output.Format != "qcow2" {
		return req, fault.New(fault.InvalidRequest, req.Output.Path, "compression is only available for qcow2 output").
			WithHint("Set output.compression = false or output.format = \"qcow2\".")
	}
	if req.Source.Format != "" && !slices.Contains(diskformat.Inputs, diskformat.Format(req.Source.Format)) {
		return req, fault.New(fault.InvalidRequest, req.Source.Path, "source format %q is not supported", req.Source.Format)
	}
	if err := req.Fixes.Options.Validate(); err != nil {
		return req, err
	}
	return req, nil
}
