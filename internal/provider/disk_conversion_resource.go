package provider

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/vmconv/terraform-provider-vmconv/engine"
	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
)

var (
	_ resource.Resource                = &diskConversionResource{}
	_ resource.ResourceWithConfigure   = &diskConversionResource{}
	_ resource.ResourceWithModifyPlan  = &diskConversionResource{}
	_ resource.ResourceWithImportState = &diskConversionResource{}
	_ resource.ResourceWithIdentity    = &diskConversionResource{}
)

// NewDiskConversionResource is the vmconv_disk_conversion constructor.
func NewDiskConversionResource() resource.Resource {
	return &diskConversionResource{}
}

// diskConversionResource is vmconv_disk_conversion; its schema is in
// disk_conversion_schema.go, its model and the mapping to and from the
// engine in disk_conversion_model.go.
type diskConversionResource struct {
	data *providerData
}

// Private state keys.
const (
	privStamp = "output_stamp"
	privDrift = "output_drift"
)

// Default operation timeouts. A multi-GiB conversion with a boot test under
// software emulation can take most of an hour.
const (
	defaultCreateTimeout = 60 * time.Minute
	defaultReadTimeout   = 5 * time.Minute
	defaultUpdateTimeout = 5 * time.Minute
	defaultDeleteTimeout = 5 * time.Minute
)

func (r *diskConversionResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_disk_conversion"
}

func (r *diskConversionResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.data = configured(req.ProviderData, &resp.Diagnostics)
}

func (r *diskConversionResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if req.Plan.Raw.IsNull() || r.data == nil {
		return // destroy, or validation before the provider is configured
	}
	var plan diskConversionModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	var state *diskConversionModel
	if !req.State.Raw.IsNull() {
		state = &diskConversionModel{}
		resp.Diagnostics.Append(req.State.Get(ctx, state)...)
	}
	if resp.Diagnostics.HasError() || !knownInputs(ctx, &plan, req.Config) {
		return // inputs that depend on other resources are planned at apply
	}
	e := r.data.engine
	ereq := toRequest(ctx, &plan, req.Config, r.data, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	managed := state != nil && state.Output != nil && state.Output.Path.Equal(plan.Output.Path) &&
		state.Output.Pool.Equal(plan.Output.Pool) && state.Output.Volume.Equal(plan.Output.Volume)
	// A replacement re-plans with no prior state while the old output is
	// still there: the engine plan treats a vmconv output as possibly this
	// resource's, and Create refuses it if it is not.
	ep, err := r.enginePlan(ctx, ereq, engine.PlanOptions{ManagedOutput: managed, Inspect: r.data.planInspection, Fetch: r.data.planFetch, Creates: state == nil})
	if err != nil {
		if state != nil && (fault.Is(err, fault.SourceMissing) || fault.Is(err, fault.SourceUnreadable)) {
			resp.Diagnostics.AddAttributeWarning(path.Root("source").AtName("path"), summarySourceUnavailable,
				detailFor("Planning the conversion", err)+"\n\nThe existing output is kept as it is. Restore the source to detect changes again.")
			return
		}
		addFaultAt(&resp.Diagnostics, attributeFor(err), "Planning the conversion", err)
		return
	}
	// A plan that differs from the state changes the conversion; its
	// saved plan goes stale if the source changes before the apply.
	var stateFingerprint *string
	if state != nil {
		stateFingerprint = state.SourceFingerprint.ValueStringPointer()
	}
	if !checkLastPlan(ctx, e, ep, stateFingerprint, state != nil && !req.Plan.Raw.Equal(req.State.Raw), sourceWords{
		what: "source disk", staleSummary: summaryFor(fault.SourceChanged), summary: summarySourceChangedPlan, changedSinceLastPlanned: sourceChangeDetail,
	}, &resp.Diagnostics) {
		return
	}

	if state == nil || plan.SourceFingerprint.IsUnknown() {
		writePlanFile(ctx, &plan, ep, &resp.Diagnostics)
		setPlanned(ctx, &plan, ep, &resp.Diagnostics)
		if ep.Source.Deferred {
			// A remote source planned from its metadata: what its content
			// decides is known after apply.
			setDeferred(&plan)
		}
		if state == nil {
			r.data.planned.put(ereq, ep)
		}
		resp.Diagnostics.Append(resp.Plan.Set(ctx, &plan)...)
		return
	}
	if !plan.BootTest.equal(state.BootTest) {
		// Update re-runs the boot test on the existing output. A volume is
		// on the host, out of the runner's reach: it is converted again,
		// and the boot test runs before the upload.
		plan.BootTestResult = types.ObjectUnknown(bootResultAttrTypes)
		if ep.Output.Volume != nil {
			resp.RequiresReplace = append(resp.RequiresReplace, path.Root("boot_test"))
		}
	}
	if drift, _ := req.Private.GetKey(ctx, privDrift); len(drift) > 0 {
		at, what := path.Root("output").AtName("path"), "The output "+ereq.Output.Path
		if v := ep.Output.Volume; v != nil {
			at, what = path.Root("output").AtName("volume"), fmt.Sprintf("The volume %s in pool %s on %s", v.Name, v.Pool, v.URI)
		}
		resp.Diagnostics.AddAttributeWarning(at, summaryOutputDrift,
			fmt.Sprintf("%s was modified outside Terraform after it was written (its size, modification time or sampled content no longer match). "+
				"It will be replaced with a fresh conversion.", what))
		plan.OutputSHA256, plan.OutputSize = types.StringUnknown(), types.Int64Unknown()
		resp.RequiresReplace = append(resp.RequiresReplace, path.Root("output_sha256"))
	}
	if ep.Source.Fingerprint != state.SourceFingerprint.ValueString() {
		resp.Diagnostics.AddAttributeWarning(path.Root("source"), "Source Disk Changed",
			fmt.Sprintf("The source changed since the output was written, so the output will be replaced.\n\n%s", chainChange(state, ep)))
		setPlanned(ctx, &plan, ep, &resp.Diagnostics)
		plan.OutputSHA256, plan.OutputSize = types.StringUnknown(), types.Int64Unknown()
		resp.RequiresReplace = append(resp.RequiresReplace, path.Root("source_fingerprint"))
	}
	writePlanFile(ctx, &plan, ep, &resp.Diagnostics)
	resp.Diagnostics.Append(resp.Plan.Set(ctx, &plan)...)
}

func (r *diskConversionResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	if r.data == nil {
		resp.Diagnostics.AddError(summaryUnconfigured, unconfiguredDetail("creating a conversion"))
		return
	}
	var plan diskConversionModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, d := plan.Timeouts.Create(ctx, defaultCreateTimeout)
	resp.Diagnostics.Append(d...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	e := r.data.engine
	ereq := toRequest(ctx, &plan, req.Config, r.data, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	ep := r.data.planned.take(ereq, plan.SourceFingerprint)
	if ep != nil {
		tflog.Debug(ctx, "applying the engine plan of this apply's plan; Apply re-checks the source against it", map[string]any{"path": ereq.Output.Path})
	} else {
		// No plan to take: its inputs were unknown when it was made, or its
		// remote source was planned from metadata, whose content decides
		// format, chain and sizes. Plan now, fetching the source.
		var err error
		if ep, err = r.enginePlan(ctx, ereq, engine.PlanOptions{Inspect: r.data.planInspection, Fetch: true, Creates: true}); err != nil {
			addFaultAt(&resp.Diagnostics, attributeFor(err), "Converting the disk", err)
			return
		}
		if want := plan.SourceFingerprint.ValueString(); !plan.SourceFingerprint.IsUnknown() && want != "" && want != ep.Source.Fingerprint {
			addFaultAt(&resp.Diagnostics, path.Root("source"), "Converting the disk",
				fault.New(fault.SourceChanged, ep.Source.Path, "the source changed between plan and apply").
					WithHint("Run terraform plan again and review the new plan.").
					WithFact("Planned fingerprint", want).WithFact("Current fingerprint", ep.Source.Fingerprint))
			return
		}
	}
	sink := newLogSink(ctx, "vmconv_disk_conversion", outputID(ep))
	var res *engine.Result
	if ep.Output.Replaces && engine.HasReport(ereq.Output.Path) {
		// A vmconv output is at the path, perhaps the one an apply of this
		// resource published before it was killed, and Terraform never
		// recorded. With overwrite = true too: an output this very
		// conversion already made is not made again.
		rep, err := e.Adopt(ep, sink)
		switch {
		case err == nil && rep != nil:
			res = rep.Result
			resp.Diagnostics.AddWarning(summaryOutputAdopted, adoptedDetail(ereq.Output.Path, rep.Created))
		case err != nil && !ereq.Output.Overwrite:
			addFaultAt(&resp.Diagnostics, attributeFor(err), "Converting the disk", err)
			return
		}
	}
	if res == nil {
		var err error
		if res, err = e.Apply(ctx, ep, sink, engine.ApplyOptions{}); err != nil {
			addFaultAt(&resp.Diagnostics, attributeFor(err), "Converting the disk", err)
			return
		}
	}
	// What the plan showed stays what state says was planned (Terraform
	// requires it); the engine plan fills what the plan left unknown.
	planned := plan
	setPlanned(ctx, &plan, ep, &resp.Diagnostics)
	keepPlanned(&plan, &planned)
	writePlanFile(ctx, &plan, ep, &resp.Diagnostics)
	setApplied(&plan, res)
	for _, w := range res.Warnings {
		resp.Diagnostics.AddWarning("Conversion Warning", w)
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
	resp.Diagnostics.Append(setOutputIdentity(ctx, plan.ID.ValueString(), "path", resp.Identity)...)
	resp.Diagnostics.Append(setStamp(ctx, resp.Private, res.Output.Stamp)...)
	if v := res.Output.Volume; v != nil {
		resp.Diagnostics.Append(resp.Private.SetKey(ctx, privVolumeStamp, []byte(strconv.Quote(v.Stamp)))...)
	}
}

func (r *diskConversionResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var state diskConversionModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	// Also when the output is gone and the resource leaves the state: the
	// identity is where it was.
	resp.Diagnostics.Append(setOutputIdentity(ctx, state.ID.ValueString(), "path", resp.Identity)...)
	timeout, d := state.Timeouts.Read(ctx, defaultReadTimeout)
	resp.Diagnostics.Append(d...)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if pool, vol, ok := volumeOf(&state); ok {
		r.readVolume(ctx, &state, pool, vol, req, resp)
		return
	}

	var stamp engine.Stamp
	if state.Output == nil {
		// After terraform import: rebuild the state from the report.
		rep, err := engine.ReadReport(state.ID.ValueString())
		if err != nil {
			resp.Diagnostics.AddError(summaryImport, importDetail(state.ID.ValueString(), err))
			return
		}
		stateFromReport(ctx, &state, rep, &resp.Diagnostics)
		stamp = rep.Result.Output.Stamp
		resp.Diagnostics.Append(setStamp(ctx, resp.Private, stamp)...)
	} else {
		raw, d := req.Private.GetKey(ctx, privStamp)
		resp.Diagnostics.Append(d...)
		if err := json.Unmarshal(raw, &stamp); err != nil || len(raw) == 0 {
			if rep, err := engine.ReadReport(state.Output.Path.ValueString()); err == nil {
				stamp = rep.Result.Output.Stamp
			}
		}
	}
	outPath := state.Output.Path.ValueString()
	drift, err := engine.CheckOutput(outPath, stamp)
	if err != nil {
		resp.Diagnostics.AddAttributeError(path.Root("output").AtName("path"), "Cannot Check Output",
			fmt.Sprintf("Reading the output to detect changes failed.\n\nFile: %s\nError: %v", outPath, err))
		return
	}
	switch drift {
	case engine.DriftMissing:
		tflog.Warn(ctx, "output is missing; removing from state so the next plan recreates it", map[string]any{"path": outPath})
		resp.State.RemoveResource(ctx)
		return
	case engine.DriftChanged:
		resp.Diagnostics.Append(resp.Private.SetKey(ctx, privDrift, []byte(`"changed"`))...)
	default:
		resp.Diagnostics.Append(resp.Private.SetKey(ctx, privDrift, nil)...)
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
}

func (r *diskConversionResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	// Only settings that do not change the output's bytes reach Update
	// (overwrite, allow_parent_cid_mismatch, boot_test, timeouts); the rest
	// replaces the resource. A changed boot test runs again on the output.
	var plan, state diskConversionModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if !plan.BootTest.equal(state.BootTest) {
		if r.data == nil {
			resp.Diagnostics.AddError(summaryUnconfigured, unconfiguredDetail("updating a conversion"))
			return
		}
		timeout, d := plan.Timeouts.Update(ctx, defaultCreateTimeout)
		resp.Diagnostics.Append(d...)
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		res, err := r.data.engine.RerunBootTest(ctx, toRequest(ctx, &plan, req.Config, r.data, &resp.Diagnostics))
		if err != nil {
			addFault(&resp.Diagnostics, "Running the boot test again", err)
			return
		}
		plan.BootTestResult = bootResultValue(res)
		if res == nil && effectiveBootTest(plan.BootTest).Enabled.ValueBool() {
			resp.Diagnostics.AddAttributeWarning(path.Root("boot_test"), summaryBootTestNotRun, bootTestNotRunDetail)
		}
	}
	if r.data != nil && !resp.Diagnostics.HasError() {
		appliedPlan(ctx, r.data.engine, toRequest(ctx, &plan, req.Config, r.data, &resp.Diagnostics))
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
	resp.Diagnostics.Append(setOutputIdentity(ctx, plan.ID.ValueString(), "path", resp.Identity)...)
}

func (r *diskConversionResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var state diskConversionModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() || state.Output == nil {
		return
	}
	if pool, vol, ok := volumeOf(&state); ok {
		if r.data == nil {
			resp.Diagnostics.AddError(summaryUnconfigured, unconfiguredDetail("deleting a volume"))
			return
		}
		if err := r.data.engine.DeleteVolume(ctx, pool, vol); err != nil {
			addFaultAt(&resp.Diagnostics, path.Root("output").AtName("volume"), "Deleting the converted volume", err)
		}
		return
	}
	rep, _ := engine.ReadReport(state.Output.Path.ValueString())
	if err := engine.DeleteOutput(state.Output.Path.ValueString()); err != nil {
		addFaultAt(&resp.Diagnostics, path.Root("output").AtName("path"), "Deleting the converted disk", err)
		return
	}
	if r.data != nil {
		r.data.engine.ReleaseSource(ctx, rep)
	}
}

func (r *diskConversionResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	id := importOutputID(ctx, req, "path", &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("id"), id)...)
	resp.Diagnostics.Append(setOutputIdentity(ctx, id, "path", resp.Identity)...)
}

func (r *diskConversionResource) IdentitySchema(_ context.Context, _ resource.IdentitySchemaRequest, resp *resource.IdentitySchemaResponse) {
	resp.IdentitySchema = outputIdentitySchema("path", "The output image on this machine, as `output.path` (absolute).", "The volume in `pool`, as `output.volume`.")
}

// enginePlan asks the engine for a plan. For a plan that creates
// (opts.Creates), a vmconv output (one with a report) already at the
// output path may be this resource's: an
// output a replaced conversion still holds at plan time, or one an apply
// published before it was killed and Terraform never recorded. It is then
// planned as if it were; Create's Adopt decides.
func (r *diskConversionResource) enginePlan(ctx context.Context, ereq engine.Request, opts engine.PlanOptions) (*engine.Plan, error) {
	ep, err := r.data.engine.Plan(ctx, ereq, opts)
	if opts.Creates && !opts.ManagedOutput && fault.Is(err, fault.OutputExists) && r.vmconvOutput(ctx, ereq) {
		tflog.Debug(ctx, "existing vmconv output at the output path; Create decides", map[string]any{"path": ereq.Output.Path})
		opts.ManagedOutput = true
		refused := err
		ep, err = r.data.engine.Plan(ctx, ereq, opts)
		if err == nil && ereq.Output.Pool != "" && !r.sameVolumeConversion(ctx, ereq, ep) {
			// A volume has no Adopt at Create: only the very conversion
			// that published it (a replacement, a killed apply) takes it.
			return nil, refused
		}
	}
	return ep, err
}

// plannedConversions hands the engine plan that ModifyPlan made for a new
// conversion to the Create that applies it. Terraform plans every resource
// again during apply, in the provider process that then applies it, so a
// Create finds the engine plan made moments earlier for the very request it
// builds, and applies it instead of planning again: the engine's Apply
// re-checks the source against it, which is then the only time the source
// is resolved after the plan. (The framework gives Create none of the
// plan's private state, so the plan is kept here, in memory, with the
// credentials and headers its request already held.)
type plannedConversions struct {
	mu sync.Mutex
	m  map[string]plannedConversion // by outputKey
}

// vmconvOutput says whether the output vmconv would write is already one
// of vmconv's: a file with a report, or a volume with one.
func (r *diskConversionResource) vmconvOutput(ctx context.Context, ereq engine.Request) bool {
	if ereq.Output.Pool != "" {
		// The report decides, even when the volume itself is gone.
		rep, _, err := r.data.engine.ReadVolumeSet(ctx, ereq.Output.Pool, ereq.Output.Volume, []string{})
		return err == nil && rep != nil
	}
	return engine.HasReport(ereq.Output.Path)
}

// sameVolumeConversion says whether the volume's report is of the
// conversion ep plans: the same source content into the same format.
func (r *diskConversionResource) sameVolumeConversion(ctx context.Context, ereq engine.Request, ep *engine.Plan) bool {
	rep, _, err := r.data.engine.ReadVolumeSet(ctx, ereq.Output.Pool, ereq.Output.Volume, []string{})
	if err != nil || rep == nil || rep.Plan == nil {
		return false
	}
	was := rep.Plan
	return was.Source.Fingerprint == ep.Source.Fingerprint && was.Request.Output.Format == ereq.Output.Format
}

// outputKey is what a request writes: a disk's path, a VM's folder or a
// pool volume.
func outputKey(req engine.Request) string {
	return req.Output.Path + "\x00" + req.Output.Dir + "\x00" + req.Output.Pool + "\x00" + req.Output.Volume
}

type plannedConversion struct {
	req  engine.Request
	plan *engine.Plan
}

func (p *plannedConversions) put(req engine.Request, plan *engine.Plan) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = map[string]plannedConversion{}
	}
	p.m[outputKey(req)] = plannedConversion{req: req, plan: plan}
}

// take returns the plan made for req, if its source fingerprint is the one
// Terraform planned and its content is known (a remote source planned from
// metadata is not): then state can be filled from it.
func (p *plannedConversions) take(req engine.Request, fingerprint types.String) *engine.Plan {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, ok := p.m[outputKey(req)]
	delete(p.m, outputKey(req))
	if !ok || !reflect.DeepEqual(c.req, req) || fingerprint.IsUnknown() || c.plan.Source.Fingerprint != fingerprint.ValueString() || c.plan.Source.Deferred {
		return nil
	}
	return c.plan
}

// writePlanFile writes the engine's plan where plan_path asks.
func writePlanFile(ctx context.Context, m *diskConversionModel, p *engine.Plan, diags *diag.Diagnostics) {
	if m.PlanPath.IsNull() || m.PlanPath.IsUnknown() || m.PlanPath.ValueString() == "" {
		return
	}
	if err := engine.WritePlanFile(m.PlanPath.ValueString(), p); err != nil {
		diags.AddAttributeWarning(path.Root("plan_path"), "Cannot Write The Plan File",
			fmt.Sprintf("The engine's plan could not be written.\n\nFile: %s\nError: %v", m.PlanPath.ValueString(), err))
		return
	}
	tflog.Info(ctx, "wrote the engine plan", map[string]any{"path": m.PlanPath.ValueString()})
}

type privateSetter interface {
	SetKey(ctx context.Context, key string, value []byte) diag.Diagnostics
}

func setStamp(ctx context.Context, p privateSetter, s engine.Stamp) diag.Diagnostics {
	b, _ := json.Marshal(s)
	return p.SetKey(ctx, privStamp, b)
}

func importDetail(id string, err error) string {
	return fmt.Sprintf("Importing reads the report vmconv writes beside each output (%s), which records the source and settings of the conversion. "+
		"It could not be read.\n\nFile: %s\nError: %v\n\nImport by the absolute path of an output written by vmconv.", engine.ReportSuffix, engine.ReportPath(id), err)
}

// attributeFor points a fault at the attribute the user should look at.
func attributeFor(err error) path.Path {
	switch fault.CodeOf(err) {
	case fault.OutputDirMissing, fault.OutputIsSource, fault.OutputExists, fault.OutputLocked, fault.OutputNotWritable, fault.NoSpace:
		return path.Root("output").AtName("path")
	case fault.ChainCIDMismatch:
		return path.Root("source").AtName("allow_parent_cid_mismatch")
	case fault.OlderSnapshot:
		return path.Root("source").AtName("allow_older_snapshot")
	default:
		return path.Root("source").AtName("path")
	}
}

func sourceChangeDetail(last *engine.PlanRecord, p *engine.Plan) string {
	return fmt.Sprintf("The source disk is not what it was when this conversion was last planned (%s). Run terraform plan again and review it.\n\n"+
		"%sPrevious fingerprint: %s\nCurrent fingerprint: %s\nPrevious chain: %s\nCurrent chain: %s",
		last.At.Format(time.RFC3339), changedFilesFacts(engine.ChangedFiles(last.Files, p.Source.Files)), last.Fingerprint, p.Source.Fingerprint, strings.Join(last.Chain, ", "), strings.Join(p.Source.ChainPaths(), ", "))
}

func chainChange(state *diskConversionModel, p *engine.Plan) string {
	var old []string
	state.Chain.ElementsAs(context.Background(), &old, false)
	now := p.Source.ChainPaths()
	switch {
	case len(now) > len(old):
		return fmt.Sprintf("New snapshot layer(s): the chain grew from %d to %d files (newest: %s).", len(old), len(now), now[0])
	case len(now) < len(old):
		return fmt.Sprintf("The chain shrank from %d to %d files (snapshots consolidated or removed).", len(old), len(now))
	case strings.Join(old, "\n") != strings.Join(now, "\n"):
		return fmt.Sprintf("The chain's files changed: was %s, now %s.", strings.Join(old, ", "), strings.Join(now, ", "))
	}
	// The output's report has the stamps of the files it was converted
	// from (outputs written since vmconv recorded them).
	changed := "A file of the chain was modified (content or modification time).\n\n"
	if state.Output != nil && !state.Output.Path.IsNull() {
		if rep, err := engine.ReadReport(state.Output.Path.ValueString()); err == nil && rep.Plan != nil {
			if c := engine.ChangedFiles(rep.Plan.Source.Files, p.Source.Files); len(c) > 0 {
				changed = "The chain's files changed (content or modification time).\n\n" + changedFilesFacts(c)
			}
		}
	}
	return fmt.Sprintf("%sPrevious fingerprint: %s\nCurrent fingerprint: %s", changed, state.SourceFingerprint.ValueString(), p.Source.Fingerprint)
}
