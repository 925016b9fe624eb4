package provider

import (
	"context"

	"github.com/hashicorp/terraform-plugin-framework-validators/int64validator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64default"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/objectplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/vmconv/terraform-provider-vmconv/engine"
)

// vsphereKind is a VM's disk in vCenter or ESXi, read through the
// datastore's HTTP interface with the provider's credentials.
type vsphereKind struct{}

type vsphereModel struct {
	URL        types.String `tfsdk:"url"`
	Datacenter types.String `tfsdk:"datacenter"`
	VM         types.String `tfsdk:"vm"`
	Disk       types.Int64  `tfsdk:"disk"`
	Snapshot   types.String `tfsdk:"snapshot"`
	Thumbprint types.String `tfsdk:"thumbprint"`
	Insecure   types.Bool   `tfsdk:"insecure"`
}

// Values of snapshot.
const (
	snapshotCreate = "create"
	snapshotNone   = "none"
)

func (vsphereKind) name() string { return "vsphere" }

func (vsphereKind) schema() kindSchema {
	return kindSchema{block: schema.SingleNestedBlock{
		MarkdownDescription: "A VM's disk in vCenter or ESXi, with its whole snapshot chain, copied through the datastore's `/folder` HTTP interface " +
			"(ranged, resumable, reused when unchanged) into the cache. Credentials come from the provider (`vsphere_username`, `vsphere_password`). " +
			"Plans read the VM's configuration only; the copy happens at apply. With `snapshot = \"create\"` (the default) vmconv takes a snapshot, " +
			"reads the disk as of that snapshot while the VM runs on, and removes the snapshot afterwards, also when the apply fails. " +
			"A session that expires during a long copy is logged in again.",
		PlanModifiers: []planmodifier.Object{objectplanmodifier.RequiresReplace()},
		Attributes: map[string]schema.Attribute{
			"url":        schema.StringAttribute{Required: true, MarkdownDescription: "The SDK endpoint, such as `https://vcenter.example/sdk`."},
			"datacenter": schema.StringAttribute{Optional: true, MarkdownDescription: "The datacenter; may be omitted when there is only one."},
			"vm":         schema.StringAttribute{Required: true, MarkdownDescription: "The VM's name or inventory path."},
			"disk": schema.Int64Attribute{Optional: true, Computed: true, Default: int64default.StaticInt64(0),
				MarkdownDescription: "Which disk, in the order `vmconv_vsphere_vm` lists them (controller order: SCSI, SATA, NVMe, IDE, then controller and unit), from 0.", Validators: []validator.Int64{int64validator.AtLeast(0)}},
			"snapshot": schema.StringAttribute{Optional: true, Computed: true, Default: stringdefault.StaticString(snapshotCreate),
				MarkdownDescription: "`create` (default): read from a snapshot taken for the copy. `none`: read the disk as it is, for a powered-off VM.",
				Validators:          []validator.String{stringvalidator.OneOf(snapshotCreate, snapshotNone)}},
			"thumbprint": schema.StringAttribute{Optional: true, MarkdownDescription: "Pins the server certificate's thumbprint."},
			"insecure":   schema.BoolAttribute{Optional: true, MarkdownDescription: "Skip certificate verification (lab systems only)."},
		},
	}}
}

// spec gives the source the provider's credentials, which the request never
// carries into plans or reports.
func (vsphereKind) spec(ctx context.Context, v attr.Value, in specInputs, s *engine.SourceSpec, diags *diag.Diagnostics) {
	var m vsphereModel
	kindValue(ctx, v, &m, diags)
	s.VSphere = &engine.VSphereSpec{URL: m.URL.ValueString(), Datacenter: m.Datacenter.ValueString(), VM: m.VM.ValueString(),
		Disk: int(m.Disk.ValueInt64()), Snapshot: m.Snapshot.ValueString() != snapshotNone,
		Thumbprint: m.Thumbprint.ValueString(), Insecure: m.Insecure.ValueBool()}
	if in.data != nil {
		s.VSphere.Username, s.VSphere.Password = in.data.vsphereUser, in.data.vspherePassword
	}
}

func (k vsphereKind) fromSpec(ctx context.Context, s engine.SourceSpec, diags *diag.Diagnostics) (attr.Value, bool) {
	v := s.VSphere
	if v == nil {
		return nil, false
	}
	snap := snapshotNone
	if v.Snapshot {
		snap = snapshotCreate
	}
	m := vsphereModel{URL: types.StringValue(v.URL), Datacenter: nullIfEmpty(v.Datacenter), VM: types.StringValue(v.VM),
		Disk: types.Int64Value(int64(v.Disk)), Snapshot: types.StringValue(snap), Thumbprint: nullIfEmpty(v.Thumbprint), Insecure: types.BoolNull()}
	if v.Insecure {
		m.Insecure = types.BoolValue(true)
	}
	return kindObject(ctx, k, m, diags), true
}
