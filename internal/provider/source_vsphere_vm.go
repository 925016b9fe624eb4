package provider

import (
	"context"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/objectplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-framework/types/basetypes"

	"github.com/vmconv/terraform-provider-vmconv/engine"
	"github.com/vmconv/terraform-provider-vmconv/internal/provider/validators"
)

// vmVSphereKind is a whole VM in vCenter or ESXi: the disk kind without
// its disk number, and with warm migration (the warm block).
type vmVSphereKind struct{ wholeVM }

var vmVSphere = vmVSphereKind{wholeVM{sourceKind: vsphereKind{}, drop: "disk", doc: "A VM in vCenter or ESXi: every virtual disk, in controller order, each with its snapshot chain, copied through the " +
	"datastore's `/folder` HTTP interface into the cache. Plans read the VM's configuration only (its hardware and disks are known at plan time); the copy " +
	"happens at apply. With `snapshot = \"create\"` (the default) every disk is read from one snapshot of the VM, removed afterwards, also when the apply fails. " +
	"Credentials come from the provider. With a `warm` block the VM is migrated while it runs (see `warm`)."}}

type warmModel struct {
	Cutover         types.Bool   `tfsdk:"cutover"`
	ShutdownTimeout types.String `tfsdk:"shutdown_timeout"`
}

func (k vmVSphereKind) schema() kindSchema {
	b, _ := k.wholeVM.schema().block.(schema.SingleNestedBlock)
	b.Blocks = map[string]schema.Block{"warm": schema.SingleNestedBlock{
		MarkdownDescription: "Warm migration: copy the VM while it runs, then cut over with a short downtime. The first apply enables changed block tracking " +
			"on the VM if it is off and copies every disk in full from a snapshot into staging images in `cache_dir` (never the output); every later plan shows " +
			"an update in place that syncs the areas changed since the last sync. With `cutover = true` the apply shuts the VM down (a guest shutdown, then a " +
			"power off after `shutdown_timeout`), syncs the last changes, runs the fixes and publishes the images; `warm.downtime` records how long the VM was down. " +
			"The snapshots are always removed, also on failure; a snapshot a killed apply left is removed by the next.",
		Attributes: map[string]schema.Attribute{
			"cutover": schema.BoolAttribute{Optional: true,
				MarkdownDescription: "`false` (default): sync the staging images with the running VM. `true`: cut over, converting the VM. Set it to `true` in the change that ends the migration."},
			"shutdown_timeout": schema.StringAttribute{Optional: true,
				MarkdownDescription: "How long the guest has to shut down at cutover before the VM is powered off, as a Go duration (`90s`, `5m`). Default `5m`.",
				Validators:          []validator.String{validators.Duration(time.Second, 24*time.Hour)}},
		},
	}}
	// A warm migration moves from sync to cutover by updates in place.
	b.PlanModifiers = []planmodifier.Object{objectplanmodifier.RequiresReplaceIf(replaceUnlessWarmStep,
		"Changing the VM replaces the conversion; turning the warm migration's cutover on or changing its timeout does not.",
		"Changing the VM replaces the conversion; turning the warm migration's cutover on or changing its timeout does not.")}
	return kindSchema{block: b}
}

// replaceUnlessWarmStep replaces the conversion when anything of the VM
// but the warm block changed, or warm migration was turned on for a VM
// converted cold. Turning it off replaces only a migration not cut over
// yet, which the resource decides (it knows whether it was).
func replaceUnlessWarmStep(_ context.Context, req planmodifier.ObjectRequest, resp *objectplanmodifier.RequiresReplaceIfFuncResponse) {
	if req.StateValue.IsNull() || req.PlanValue.IsUnknown() {
		return
	}
	st, pl := req.StateValue.Attributes(), req.PlanValue.Attributes()
	for name, v := range pl {
		if name == "warm" {
			if st[name].IsNull() && !v.IsNull() {
				resp.RequiresReplace = true
			}
			continue
		}
		if !v.Equal(st[name]) {
			resp.RequiresReplace = true
		}
	}
}

func (k vmVSphereKind) spec(ctx context.Context, v attr.Value, in specInputs, s *engine.SourceSpec, diags *diag.Diagnostics) {
	o, ok := v.(basetypes.ObjectValue)
	if !ok {
		return
	}
	attrs := o.Attributes()
	var w attr.Value = types.ObjectNull(nil)
	if x, ok := attrs["warm"]; ok {
		w = x
	}
	// The disk kind knows no warm block: hand it the rest.
	delete(attrs, "warm")
	t, _ := k.wholeVM.schema().typ().(basetypes.ObjectType)
	rest, d := types.ObjectValue(t.AttrTypes, attrs)
	if diags.Append(d...); d.HasError() {
		return
	}
	k.wholeVM.spec(ctx, rest, in, s, diags)
	if wo, ok := w.(basetypes.ObjectValue); ok && !wo.IsNull() && !wo.IsUnknown() && s.VSphere != nil {
		var m warmModel
		diags.Append(wo.As(ctx, &m, basetypes.ObjectAsOptions{})...)
		timeout, _ := time.ParseDuration(m.ShutdownTimeout.ValueString())
		s.VSphere.Warm = &engine.WarmSpec{Cutover: m.Cutover.ValueBool(), ShutdownTimeout: timeout}
	}
}

func (k vmVSphereKind) fromSpec(ctx context.Context, s engine.SourceSpec, diags *diag.Diagnostics) (attr.Value, bool) {
	v, ok := k.wholeVM.fromSpec(ctx, s, diags)
	if !ok {
		return v, ok
	}
	o, _ := v.(basetypes.ObjectValue)
	attrs := o.Attributes()
	wt, _ := k.schema().block.(schema.SingleNestedBlock).Blocks["warm"].Type().(basetypes.ObjectType)
	attrs["warm"] = types.ObjectNull(wt.AttrTypes)
	if w := s.VSphere.Warm; w != nil {
		m := warmModel{Cutover: types.BoolValue(w.Cutover), ShutdownTimeout: types.StringNull()}
		if w.ShutdownTimeout > 0 {
			m.ShutdownTimeout = types.StringValue(w.ShutdownTimeout.String())
		}
		wv, d := types.ObjectValueFrom(ctx, wt.AttrTypes, m)
		diags.Append(d...)
		attrs["warm"] = wv
	}
	t, _ := k.schema().typ().(basetypes.ObjectType)
	nv, d := types.ObjectValue(t.AttrTypes, attrs)
	diags.Append(d...)
	return nv, true
}
