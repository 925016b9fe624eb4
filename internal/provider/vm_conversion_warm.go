package provider

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/tfsdk"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/vmconv/terraform-provider-vmconv/engine"
	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
)

// A warm migration (source.vsphere.warm) lives in two phases. Before the
// cutover, apply syncs staging images in the cache and publishes nothing:
// disks is empty and every plan is an update in place (the next sync).
// The cutover converts like any VM; from then on the resource is a
// converted VM whose warm attribute records the migration.

var warmAttrTypes = map[string]attr.Type{
	"cut_over":   types.BoolType,
	"syncs":      types.Int64Type,
	"last_sync":  types.StringType,
	"change_ids": types.ListType{ElemType: types.StringType},
	"downtime":   types.StringType,
}

func warmAttribute() schema.Attribute {
	return schema.SingleNestedAttribute{
		Computed: true,
		MarkdownDescription: "A warm migration's progress (null for a cold one): `cut_over`; `syncs`, how many syncs copied the VM; `last_sync`, when the last " +
			"one ran (RFC 3339); `change_ids`, the disks' change IDs as of it; `downtime`, from the shutdown request to the images published, once cut over " +
			"(the report splits it: shutdown, final sync, each stage).",
		Attributes: map[string]schema.Attribute{
			"cut_over":   schema.BoolAttribute{Computed: true, MarkdownDescription: "Whether the cutover is done."},
			"syncs":      schema.Int64Attribute{Computed: true, MarkdownDescription: "How many syncs ran, the cutover's included."},
			"last_sync":  schema.StringAttribute{Computed: true, MarkdownDescription: "When the last sync started."},
			"change_ids": schema.ListAttribute{Computed: true, ElementType: types.StringType, MarkdownDescription: "Each disk's change ID as of the last sync."},
			"downtime":   schema.StringAttribute{Computed: true, MarkdownDescription: "How long the VM was down for the cutover (a Go duration); null before it."},
		},
	}
}

// warmSpecOf is the warm settings of a request; nil for a cold migration.
func warmSpecOf(req engine.Request) *engine.WarmSpec {
	if req.Source.VSphere == nil {
		return nil
	}
	return req.Source.VSphere.Warm
}

// cutOver tells whether a state's warm migration is done.
func cutOver(m *vmConversionModel) bool {
	if m == nil || m.Warm.IsNull() || m.Warm.IsUnknown() {
		return false
	}
	v, ok := m.Warm.Attributes()["cut_over"].(types.Bool)
	return ok && v.ValueBool()
}

func warmValue(st *engine.WarmState, res *engine.WarmResult, diags *diag.Diagnostics) types.Object {
	vals := map[string]attr.Value{"cut_over": types.BoolValue(res != nil), "syncs": types.Int64Value(0), "last_sync": types.StringNull(),
		"change_ids": types.ListNull(types.StringType), "downtime": types.StringNull()}
	syncs := []engine.WarmSyncRecord(nil)
	var ids []string
	if st != nil {
		syncs = st.Syncs
		for _, d := range st.Disks {
			ids = append(ids, d.ChangeID)
		}
	}
	if res != nil {
		syncs = res.Syncs
		vals["downtime"] = types.StringValue((time.Duration(res.DowntimeMS) * time.Millisecond).String())
		if n := len(syncs); n > 0 {
			ids = nil
			for _, d := range syncs[n-1].Disks {
				ids = append(ids, d.To)
			}
		}
	}
	if n := len(syncs); n > 0 {
		vals["syncs"], vals["last_sync"] = types.Int64Value(int64(n)), types.StringValue(syncs[n-1].At.Format(time.RFC3339))
	}
	if ids != nil {
		vals["change_ids"] = strList(ids)
	}
	o, d := types.ObjectValue(warmAttrTypes, vals)
	diags.Append(d...)
	return o
}

// planWarmSync plans a sync before the cutover: nothing at the output, the
// sync's description as the one stage, a warning when it must copy
// everything because tracking was reset on the source.
func (r *vmConversionResource) planWarmSync(ctx context.Context, plan *vmConversionModel, ereq engine.Request, ep *engine.Plan, resp *resource.ModifyPlanResponse) {
	setWarmSyncPlanned(plan, ep)
	plan.Warm = types.ObjectUnknown(warmAttrTypes)
	pv := ep.Warm
	what := fmt.Sprintf("copy the areas of every disk of VM %q changed since change ID(s) %s (sync %d, the last at %s)",
		ereq.Source.VSphere.VM, strings.Join(pv.ChangeIDs, ", "), pv.Syncs+1, pv.LastSync.Format(time.RFC3339))
	if pv.Full {
		what = fmt.Sprintf("enable changed block tracking on VM %q if it is off, and copy every disk in full (%s)", ereq.Source.VSphere.VM, pv.Reason)
	}
	plan.PlannedStages = strList([]string{"sync: " + what + ", from a snapshot removed after it, into staging images in the cache; the VM keeps running and nothing is written at the output"})
	plan.PlannedFixes = types.ListNull(types.ObjectType{AttrTypes: plannedFixAttrTypes})
	if pv.Reset {
		resp.Diagnostics.AddAttributeWarning(path.Root("source").AtName("vsphere").AtName("warm"), "Warm Migration Copies Everything Again",
			fmt.Sprintf("The next sync copies every disk in full: %s. The staging images are rewritten from a new snapshot; nothing is lost, but the sync takes as long as the first.", pv.Reason))
	}
	resp.Diagnostics.Append(resp.Plan.Set(ctx, plan)...)
}

// setWarmSyncPlanned fills what a sync before the cutover plans: the VM
// from the plan, and nothing at the output.
func setWarmSyncPlanned(plan *vmConversionModel, ep *engine.Plan) {
	setVMPlanned(plan, ep)
	plan.Disks = types.ListValueMust(types.ObjectType{AttrTypes: vmDiskAttrTypes}, []attr.Value{})
	plan.ReportPath = types.StringNull()
	plan.EstimatedSize = types.Int64Null()
	// What only a conversion finds is null until the cutover.
	plan.FixesApplied, plan.BootTestResult, plan.Guest = changesValue(nil), bootResultValue(nil), guestValue(nil)
}

// applyWarm runs a warm migration's apply: a sync, or with cutover a
// sync while the VM runs (the first apply's) and then the cutover. It
// reports whether it handled the apply.
func (r *vmConversionResource) applyWarm(ctx context.Context, plan *vmConversionModel, state *vmConversionModel, ereq engine.Request, diags *diag.Diagnostics) (res *engine.Result, ep *engine.Plan, handled bool) {
	w := warmSpecOf(ereq)
	if w == nil || cutOver(state) {
		return nil, nil, false
	}
	e := r.data.engine
	sink := newLogSink(ctx, "vmconv_vm_conversion", ereq.Output.Dir)
	if !w.Cutover || state == nil {
		// Before the cutover, and the first copy of one cut over at once:
		// the long copy runs while the VM is up.
		st, err := e.WarmSync(ctx, ereq, sink)
		if err != nil {
			addFaultAt(diags, path.Root("source").AtName("vsphere"), "Syncing the warm migration", err)
			return nil, nil, true
		}
		if !w.Cutover {
			if plan.ID.IsUnknown() {
				// Planned with inputs unknown: what the plan would have said.
				if ep, err := r.enginePlan(ctx, ereq, engine.PlanOptions{}); err == nil {
					setWarmSyncPlanned(plan, ep)
				} else {
					addFaultAt(diags, vmAttributeFor(err), "Syncing the warm migration", err)
					return nil, nil, true
				}
			}
			plan.Warm = warmValue(st, nil, diags)
			return nil, nil, true
		}
	}
	// The cutover: planned from the VM's configuration (a plan that
	// fetched would already shut it down), converted by Apply, which checks
	// the VM against this plan again before it shuts it down.
	ep, err := r.enginePlan(ctx, ereq, engine.PlanOptions{})
	if want := plan.SourceFingerprint; err == nil && !want.IsUnknown() && want.ValueString() != "" && want.ValueString() != ep.Source.Fingerprint {
		err = fault.New(fault.SourceChanged, ep.Source.Path, "the VM's disks changed between plan and apply").
			WithHint("Run terraform plan again and review the new plan; the VM was not shut down.").
			WithFact("Planned fingerprint", want.ValueString()).WithFact("Current fingerprint", ep.Source.Fingerprint)
	}
	if err == nil {
		res, err = e.Apply(ctx, ep, sink, engine.ApplyOptions{})
	}
	if err != nil {
		addFaultAt(diags, vmAttributeFor(err), "Cutting the warm migration over", err)
		return nil, nil, true
	}
	plan.Warm = warmValue(nil, res.Warm, diags)
	return res, ep, true
}

// warmApplied records a warm migration's apply in the state: a sync's
// progress, or a cutover's images as a conversion's.
func (r *vmConversionResource) warmApplied(ctx context.Context, plan *vmConversionModel, ep *engine.Plan, res *engine.Result,
	st *tfsdk.State, identity *tfsdk.ResourceIdentity, private privateSetter, diags *diag.Diagnostics) {
	if diags.HasError() {
		return
	}
	if res != nil {
		planned := *plan
		setVMPlanned(plan, ep)
		setVMApplied(plan, ep, res)
		keepVMPlanned(plan, &planned)
		for _, w := range res.Warnings {
			diags.AddWarning("Conversion Warning", w)
		}
		diags.Append(setStamps(ctx, private, res.Disks)...)
	}
	diags.Append(st.Set(ctx, plan)...)
	diags.Append(setOutputIdentity(ctx, plan.ID.ValueString(), "dir", identity)...)
}

// discardWarm removes the staging images of a warm migration destroyed
// before its cutover; the VM was never touched beyond its snapshots.
func (r *vmConversionResource) discardWarm(ctx context.Context, state *vmConversionModel, diags *diag.Diagnostics) {
	if r.data == nil {
		diags.AddError(summaryUnconfigured, unconfiguredDetail("deleting a warm migration's staging images"))
		return
	}
	if err := r.data.engine.WarmDiscard(vmRequest(ctx, state, tfsdk.Config{}, r.data, diags)); err != nil {
		diags.AddAttributeError(path.Root("source").AtName("vsphere"), "Cannot Delete Staging Images", fmt.Sprintf("Removing the warm migration's staging images failed: %v", err))
	}
}
