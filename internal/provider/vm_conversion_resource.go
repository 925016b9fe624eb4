package provider

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
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
	_ resource.Resource                = &vmConversionResource{}
	_ resource.ResourceWithConfigure   = &vmConversionResource{}
	_ resource.ResourceWithModifyPlan  = &vmConversionResource{}
	_ resource.ResourceWithImportState = &vmConversionResource{}
	_ resource.ResourceWithIdentity    = &vmConversionResource{}
)

// NewVMConversionResource is the vmconv_vm_conversion constructor.
func NewVMConversionResource() resource.Resource {
	return &vmConversionResource{}
}

// vmConversionResource is vmconv_vm_conversion: a whole VM converted as one
// guest into a folder. Its schema is in vm_conversion_schema.go, its model
// and the mapping to and from the engine in vm_conversion_model.go, its
// source kinds in vm_source.go.
type vmConversionResource struct {
	data *providerData
}

// privStamps is the private state key of the images' stamps, taken when
// they were written ([]engine.OutputResult); privDrift, shared with the
// disk conversion, there lists the images that drifted.
const privStamps = "output_stamps"

func (r *vmConversionResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_vm_conversion"
}

func (r *vmConversionResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.data = configured(req.ProviderData, &resp.Diagnostics)
}

func (r *vmConversionResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if req.Plan.Raw.IsNull() || r.data == nil {
		return // destroy, or validation before the provider is configured
	}
	var plan vmConversionModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	var state *vmConversionModel
	if !req.State.Raw.IsNull() {
		state = &vmConversionModel{}
		resp.Diagnostics.Append(req.State.Get(ctx, state)...)
	}
	if resp.Diagnostics.HasError() || !vmKnownInputs(ctx, &plan, req.Config) {
		return // inputs that depend on other resources are planned at apply
	}
	e := r.data.engine
	ereq := vmRequest(ctx, &plan, req.Config, r.data, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	// A warm migration has published nothing before its cutover.
	managed := state != nil && state.Output != nil && state.Output.Dir.Equal(plan.Output.Dir) &&
		state.Output.Pool.Equal(plan.Output.Pool) && state.Output.Volume.Equal(plan.Output.Volume) &&
		(state.Warm.IsNull() || cutOver(state))
	opts := engine.PlanOptions{ManagedOutput: managed, Inspect: r.data.planInspection, Fetch: r.data.planFetch, Creates: state == nil}
	if warmSpecOf(ereq) != nil {
		// A plan that fetched a warm migration would shut the VM down.
		opts.Inspect, opts.Fetch = false, false
	}
	ep, err := r.enginePlan(ctx, ereq, opts)
	if err != nil {
		if state != nil && (fault.Is(err, fault.SourceMissing) || fault.Is(err, fault.SourceUnreadable)) {
			resp.Diagnostics.AddAttributeWarning(path.Root("source"), summaryVMSourceUnavailable,
				detailFor("Planning the VM's conversion", err)+"\n\nThe existing images are kept as they are. Restore the source to detect changes again.")
			return
		}
		addFaultAt(&resp.Diagnostics, vmAttributeFor(err), "Planning the VM's conversion", err)
		return
	}
	// A plan that differs from the state changes the conversion; its
	// saved plan goes stale if the source changes before the apply.
	var stateFingerprint *string
	if state != nil {
		stateFingerprint = state.SourceFingerprint.ValueStringPointer()
	}
	if !checkLastPlan(ctx, e, ep, stateFingerprint, state != nil && !req.Plan.Raw.Equal(req.State.Raw), sourceWords{
		what: "source VM", staleSummary: summaryVMSourceChangedAfterPlan, summary: summaryVMSourceChangedPlan, changedSinceLastPlanned: vmSourceChangeDetail,
	}, &resp.Diagnostics) {
		return
	}

	plan.Warm = types.ObjectNull(warmAttrTypes)
	if state != nil {
		plan.Warm = state.Warm
	}
	if state != nil && !state.Warm.IsNull() && !cutOver(state) && warmSpecOf(ereq) == nil {
		// Warm migration turned off before its cutover: nothing was
		// converted; a cold conversion starts over.
		resp.RequiresReplace = append(resp.RequiresReplace, path.Root("source").AtName("vsphere").AtName("warm"))
	}
	if w := warmSpecOf(ereq); w != nil && !cutOver(state) {
		if !w.Cutover {
			r.planWarmSync(ctx, &plan, ereq, ep, resp)
			return
		}
		plan.Warm = types.ObjectUnknown(warmAttrTypes)
		setVMPlanned(&plan, ep)
		setVMDeferred(&plan, ep)
		resp.Diagnostics.Append(resp.Plan.Set(ctx, &plan)...)
		return
	}
	if state == nil || plan.SourceFingerprint.IsUnknown() {
		setVMPlanned(&plan, ep)
		setVMDeferred(&plan, ep)
		if state == nil {
			r.data.planned.put(ereq, ep)
		}
		resp.Diagnostics.Append(resp.Plan.Set(ctx, &plan)...)
		return
	}
	// The hardware is the source's, which the images do not depend on: a
	// change to it alone is an update in place.
	plan.Hardware = hardwareValue(ep.Hardware)
	if !plan.BootTest.equal(state.BootTest) {
		// Update boots the published VM again with the new settings; a
		// VM in a pool is on the host, out of the runner's reach: it is
		// converted again, with the boot test before the upload.
		plan.BootTestResult = types.ObjectUnknown(bootResultAttrTypes)
		if ep.Output.Volume != nil {
			resp.RequiresReplace = append(resp.RequiresReplace, path.Root("boot_test"))
		}
	}
	if raw, _ := req.Private.GetKey(ctx, privDrift); len(raw) > 0 {
		var drifted []string
		json.Unmarshal(raw, &drifted)
		resp.Diagnostics.AddAttributeWarning(path.Root("disks"), summaryOutputDrift,
			fmt.Sprintf("The VM's images were modified or deleted outside Terraform after they were written (size, modification time or sampled content no longer match):\n\n%s\n\n"+
				"The VM will be converted again.", strings.Join(drifted, "\n")))
		setVMPlanned(&plan, ep)
		setVMDeferred(&plan, ep)
		resp.RequiresReplace = append(resp.RequiresReplace, path.Root("disks"))
	}
	if ep.Source.Fingerprint != state.SourceFingerprint.ValueString() {
		resp.Diagnostics.AddAttributeWarning(path.Root("source"), summaryVMSourceChanged,
			fmt.Sprintf("A disk of the VM changed since its images were written (a new snapshot layer, a modified file), so the VM will be converted again.\n\n"+
				"Previous fingerprint: %s\nCurrent fingerprint: %s", state.SourceFingerprint.ValueString(), ep.Source.Fingerprint))
		setVMPlanned(&plan, ep)
		setVMDeferred(&plan, ep)
		resp.RequiresReplace = append(resp.RequiresReplace, path.Root("source_fingerprint"))
	}
	resp.Diagnostics.Append(resp.Plan.Set(ctx, &plan)...)
}

func (r *vmConversionResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	if r.data == nil {
		resp.Diagnostics.AddError(summaryUnconfigured, unconfiguredDetail("creating a VM conversion"))
		return
	}
	var plan vmConversionModel
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
	ereq := vmRequest(ctx, &plan, req.Config, r.data, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	if res, wep, handled := r.applyWarm(ctx, &plan, nil, ereq, &resp.Diagnostics); handled {
		r.warmApplied(ctx, &plan, wep, res, &resp.State, resp.Identity, resp.Private, &resp.Diagnostics)
		return
	}
	ep := r.data.planned.take(ereq, plan.SourceFingerprint)
	if ep == nil {
		// Its inputs were unknown when the plan was made: plan now.
		var err error
		if ep, err = r.enginePlan(ctx, ereq, engine.PlanOptions{Inspect: r.data.planInspection, Fetch: true, Creates: true}); err != nil {
			addFaultAt(&resp.Diagnostics, vmAttributeFor(err), "Converting the VM", err)
			return
		}
		if want := plan.SourceFingerprint.ValueString(); !plan.SourceFingerprint.IsUnknown() && want != "" && want != ep.Source.Fingerprint {
			addFaultAt(&resp.Diagnostics, path.Root("source"), "Converting the VM",
				fault.New(fault.SourceChanged, ep.Source.Path, "the VM's disks changed between plan and apply").
					WithHint("Run terraform plan again and review the new plan.").
					WithFact("Planned fingerprint", want).WithFact("Current fingerprint", ep.Source.Fingerprint))
			return
		}
	}
	sink := newLogSink(ctx, "vmconv_vm_conversion", ereq.Output.Dir)
	var res *engine.Result
	if ep.Output.Replaces {
		// A vmconv VM is in the folder, perhaps the one an apply of this
		// resource published before it was killed, and Terraform never
		// recorded: adopted when its report records this very conversion
		// and no image changed since.
		rep, err := e.Adopt(ep, sink)
		switch {
		case err == nil && rep != nil:
			res = rep.Result
			resp.Diagnostics.AddWarning(summaryOutputAdopted, adoptedDetail(ereq.Output.Dir, rep.Created))
		case err != nil && !ereq.Output.Overwrite:
			addFaultAt(&resp.Diagnostics, vmAttributeFor(err), "Converting the VM", err)
			return
		}
	}
	if res == nil {
		var err error
		if res, err = e.Apply(ctx, ep, sink, engine.ApplyOptions{}); err != nil {
			addFaultAt(&resp.Diagnostics, vmAttributeFor(err), "Converting the VM", err)
			return
		}
	}
	planned := plan
	setVMPlanned(&plan, ep)
	setVMApplied(&plan, ep, res)
	keepVMPlanned(&plan, &planned)
	if plan.Warm.IsUnknown() {
		plan.Warm = types.ObjectNull(warmAttrTypes) // planned with inputs unknown
	}
	for _, w := range res.Warnings {
		resp.Diagnostics.AddWarning("Conversion Warning", w)
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
	resp.Diagnostics.Append(setOutputIdentity(ctx, plan.ID.ValueString(), "dir", resp.Identity)...)
	resp.Diagnostics.Append(setStamps(ctx, resp.Private, res.Disks)...)
}

func (r *vmConversionResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var state vmConversionModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	// Also when the output is gone and the resource leaves the state: the
	// identity is where it was.
	resp.Diagnostics.Append(setOutputIdentity(ctx, state.ID.ValueString(), "dir", resp.Identity)...)
	if !state.Warm.IsNull() && !cutOver(&state) {
		return // a warm migration before its cutover: nothing at the output yet
	}
	if pool, prefix, names, ok := vmVolumesOf(&state); ok {
		r.readVMVolumes(ctx, &state, pool, prefix, names, req, resp)
		return
	}
	var written []engine.OutputResult
	if state.Output == nil {
		// After terraform import: rebuild the state from the report.
		rep, err := engine.ReadVMReport(state.ID.ValueString())
		if err != nil {
			resp.Diagnostics.AddError(summaryImport, vmImportDetail(state.ID.ValueString(), err))
			return
		}
		vmStateFromReport(ctx, &state, rep, &resp.Diagnostics)
		written = rep.Result.Disks
		resp.Diagnostics.Append(setStamps(ctx, resp.Private, written)...)
	} else {
		raw, d := req.Private.GetKey(ctx, privStamps)
		resp.Diagnostics.Append(d...)
		if err := json.Unmarshal(raw, &written); err != nil || len(raw) == 0 {
			if rep, err := engine.ReadVMReport(state.ID.ValueString()); err == nil {
				written = rep.Result.Disks
			}
		}
	}
	dir := state.ID.ValueString()
	folder, drifts, err := engine.CheckVMOutput(dir, written)
	if err != nil {
		resp.Diagnostics.AddAttributeError(path.Root("output").AtName("dir"), summaryCannotCheckOutput,
			fmt.Sprintf("Reading the VM's images to detect changes failed.\n\nFolder: %s\nError: %v", dir, err))
		return
	}
	var drifted []string
	for i, d := range drifts {
		if d != engine.DriftNone {
			drifted = append(drifted, fmt.Sprintf("%s: %s", written[i].Path, d))
		}
	}
	switch {
	case folder == engine.DriftMissing:
		tflog.Warn(ctx, "the output folder is missing; removing from state so the next plan converts the VM again", map[string]any{"dir": dir})
		resp.State.RemoveResource(ctx)
		return
	case folder == engine.DriftChanged && len(drifted) == 0:
		drifted = []string{dir + ": not a folder"}
		fallthrough
	case len(drifted) > 0:
		b, _ := json.Marshal(drifted)
		resp.Diagnostics.Append(resp.Private.SetKey(ctx, privDrift, b)...)
	default:
		resp.Diagnostics.Append(resp.Private.SetKey(ctx, privDrift, nil)...)
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
}

func (r *vmConversionResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	// Only settings that do not change the images reach Update (overwrite,
	// allow_older_snapshot, boot_test, timeouts) and the hardware, read
	// again from the source; the rest replaces the resource. A changed boot
	// test boots the published VM again.
	var plan, state vmConversionModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if r.data != nil && !state.Warm.IsNull() && !cutOver(&state) {
		timeout, d := plan.Timeouts.Update(ctx, defaultCreateTimeout)
		resp.Diagnostics.Append(d...)
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		ereq := vmRequest(ctx, &plan, req.Config, r.data, &resp.Diagnostics)
		if res, wep, handled := r.applyWarm(ctx, &plan, &state, ereq, &resp.Diagnostics); handled {
			r.warmApplied(ctx, &plan, wep, res, &resp.State, resp.Identity, resp.Private, &resp.Diagnostics)
			return
		}
	}
	if plan.Warm.IsUnknown() {
		plan.Warm = state.Warm
	}
	if !plan.BootTest.equal(state.BootTest) {
		if r.data == nil {
			resp.Diagnostics.AddError(summaryUnconfigured, unconfiguredDetail("updating a VM conversion"))
			return
		}
		timeout, d := plan.Timeouts.Update(ctx, defaultCreateTimeout)
		resp.Diagnostics.Append(d...)
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		res, err := r.data.engine.RerunVMBootTest(ctx, vmRequest(ctx, &plan, req.Config, r.data, &resp.Diagnostics))
		if err != nil {
			addFaultAt(&resp.Diagnostics, path.Root("boot_test"), "Running the VM's boot test again", err)
			return
		}
		plan.BootTestResult = bootResultValue(res)
		if res == nil && effectiveBootTest(plan.BootTest).Enabled.ValueBool() {
			resp.Diagnostics.AddAttributeWarning(path.Root("boot_test"), summaryBootTestNotRun, bootTestNotRunDetail)
		}
	}
	if !plan.Hardware.Equal(state.Hardware) && r.data != nil {
		// The report covers the VM as it is: its hardware is recorded
		// again, read from the source as the plan read it, in the folder's
		// report or in the pool's report volume.
		ereq := vmRequest(ctx, &plan, req.Config, r.data, &resp.Diagnostics)
		if pool, prefix, _, inPool := vmVolumesOf(&state); inPool {
			ereq.Output.Pool, ereq.Output.Volume = pool, prefix
		}
		if _, err := r.data.engine.RecordVMHardware(ctx, ereq); err != nil {
			addFaultAt(&resp.Diagnostics, path.Root("hardware"), "Recording the VM's hardware in its report", err)
			return
		}
	}
	if r.data != nil && !resp.Diagnostics.HasError() {
		appliedPlan(ctx, r.data.engine, vmRequest(ctx, &plan, req.Config, r.data, &resp.Diagnostics))
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
	resp.Diagnostics.Append(setOutputIdentity(ctx, plan.ID.ValueString(), "dir", resp.Identity)...)
}

func (r *vmConversionResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var state vmConversionModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() || state.Output == nil {
		return
	}
	if !state.Warm.IsNull() && !cutOver(&state) {
		r.discardWarm(ctx, &state, &resp.Diagnostics)
		return
	}
	if pool, prefix, names, ok := vmVolumesOf(&state); ok {
		if r.data == nil {
			resp.Diagnostics.AddError(summaryUnconfigured, unconfiguredDetail("deleting a VM's volumes"))
			return
		}
		if err := r.data.engine.DeleteVolume(ctx, pool, prefix, names...); err != nil {
			addFaultAt(&resp.Diagnostics, path.Root("output").AtName("pool"), "Deleting the VM's volumes", err)
		}
		return
	}
	rep, _ := engine.ReadVMReport(state.ID.ValueString())
	if err := engine.DeleteVMOutput(state.ID.ValueString()); err != nil {
		summary := summaryFor(fault.CodeOf(err))
		if fault.Is(err, fault.OutputExists) {
			summary = summaryOutputFolderKept
		}
		resp.Diagnostics.AddAttributeError(path.Root("output").AtName("dir"), summary, detailFor("Deleting the VM's output folder", err))
		return
	}
	if r.data != nil {
		r.data.engine.ReleaseSource(ctx, rep)
	}
}

func (r *vmConversionResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	id := importOutputID(ctx, req, "dir", &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("id"), id)...)
	resp.Diagnostics.Append(setOutputIdentity(ctx, id, "dir", resp.Identity)...)
}

func (r *vmConversionResource) IdentitySchema(_ context.Context, _ resource.IdentitySchemaRequest, resp *resource.IdentitySchemaResponse) {
	resp.IdentitySchema = outputIdentitySchema("dir", "The VM's output folder on this machine, as `output.dir` (absolute).", "The name of the VM's volume set in `pool`: `output.volume`, or the VM's name where that is not set.")
}

// enginePlan asks the engine for a plan. For a plan that creates
// (opts.Creates), a VM vmconv wrote (a folder with its report) already at
// output.dir may be this resource's:
// Terraform plans a replacement as a create, with no prior state, while
// the folder it replaces is still there. It is then planned as if it
// were; Create's Apply, which may not replace a folder it does not manage,
// decides.
func (r *vmConversionResource) enginePlan(ctx context.Context, ereq engine.Request, opts engine.PlanOptions) (*engine.Plan, error) {
	ep, err := r.data.engine.Plan(ctx, ereq, opts)
	if opts.Creates && !opts.ManagedOutput && fault.Is(err, fault.OutputExists) && ereq.Output.Pool != "" {
		// Volumes have no Adopt at Create: only the very conversion that
		// published them (a replacement, a killed apply) takes them.
		refused := err
		opts.ManagedOutput = true
		if ep, err = r.data.engine.Plan(ctx, ereq, opts); err == nil && r.sameVMVolumes(ctx, ep) {
			return ep, nil
		}
		return nil, refused
	}
	if opts.Creates && !opts.ManagedOutput && fault.Is(err, fault.OutputExists) {
		if _, rerr := engine.ReadVMReport(ereq.Output.Dir); rerr == nil {
			tflog.Debug(ctx, "a vmconv VM is in the output folder; Create decides", map[string]any{"dir": ereq.Output.Dir})
			opts.ManagedOutput = true
			ep, err = r.data.engine.Plan(ctx, ereq, opts)
		}
	}
	return ep, err
}

func setStamps(ctx context.Context, p privateSetter, written []engine.OutputResult) diag.Diagnostics {
	b, _ := json.Marshal(written)
	return p.SetKey(ctx, privStamps, b)
}

func vmImportDetail(id string, err error) string {
	return fmt.Sprintf("Importing reads the report vmconv writes into each VM's output folder (%s), which records the source and settings of the conversion. "+
		"It could not be read.\n\nFile: %s\nError: %v\n\nImport by the absolute path of an output folder written by vmconv_vm_conversion.",
		engine.VMReportName, engine.VMReportPath(id), err)
}

// vmAttributeFor points a fault at the attribute the user should look at.
// vmSourceChangeDetail explains a VM changed since it was last planned.
func vmSourceChangeDetail(last *engine.PlanRecord, p *engine.Plan) string {
	return fmt.Sprintf("The VM's disks are not what they were when this conversion was last planned (%s). Run terraform plan again and review it.\n\n"+
		"%sPrevious fingerprint: %s\nCurrent fingerprint: %s", last.At.Format(time.RFC3339),
		changedFilesFacts(engine.ChangedFiles(last.Files, p.Source.Files)), last.Fingerprint, p.Source.Fingerprint)
}

func vmAttributeFor(err error) path.Path {
	switch fault.CodeOf(err) {
	case fault.OutputDirMissing, fault.OutputIsSource, fault.OutputExists, fault.OutputLocked, fault.OutputNotWritable, fault.NoSpace:
		return path.Root("output").AtName("dir")
	case fault.OlderSnapshot:
		return path.Root("source").AtName("allow_older_snapshot")
	case fault.MultipleOSes:
		return path.Root("inspect").AtName("root")
	default:
		return path.Root("source").AtName("vmx")
	}
}
