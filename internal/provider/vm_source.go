package provider

import (
	"context"
	"sync"

	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/booldefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/tfsdk"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/vmconv/terraform-provider-vmconv/engine"
)

// vmSourceKinds are the ways of naming a whole VM, one attribute each
// under vmconv_vm_conversion's source, exactly one of them set. They are
// sourceKinds like a disk's; those that name a VM where a disk's name one
// disk of it wrap the disk's kind (wholeVM).
var vmSourceKinds = []sourceKind{
	vmxKind{},
	wholeVM{sourceKind: ovaKind{}, drop: "disk", doc: "A local OVA archive, or one on an HTTP(S) server: every disk of its OVF, in the order the VM attached them " +
		"(the drive items' controller and unit), with the OVF's hardware. It is read as a stream, once, and its disks are extracted into the cache keyed by " +
		"the archive's fingerprint; the manifest is checked. An OVA on a server is downloaded at plan time only with the provider's `plan_fetch = true`: its disks are listed inside it."},
	vmVSphere,
	wholeVM{sourceKind: esxiKind{}, doc: "A VM on an ESXi host's datastore, copied over SSH (SFTP): `path` names its `.vmx` (`[datastore] folder/web.vmx`), which is " +
		"read strictly as a local `.vmx` is, and every disk it names, each with its extents and snapshot parents. Every disk must lie in the `.vmx`'s folder. " +
		"The host key must be pinned."},
	disksKind{},
}

// vmSourceBlock is the schema of a VM's source: every kind, and the
// settings every kind shares.
func vmSourceBlock(description string) schema.SingleNestedBlock {
	attrs := map[string]schema.Attribute{
		"allow_older_snapshot": schema.BoolAttribute{
			Optional: true, Computed: true, Default: booldefault.StaticBool(false),
			MarkdownDescription: "Convert a disk whose file has a newer snapshot of it in the VM's folder (the `.vmx` is older than its disks). Off by default: " +
				"the plan refuses such a VM, naming the newer snapshot, because the output would silently lack that snapshot's writes.",
		},
	}
	return kindsBlock(description, attrs, vmSourceKinds)
}

// vmSourceAttrTypes are the attribute types under a VM's source.
var vmSourceAttrTypes = sync.OnceValue(func() map[string]attr.Type { return blockTypes(vmSourceBlock("")) })

// vmSourceSpec builds the engine's source spec from a VM's planned source.
func vmSourceSpec(ctx context.Context, src types.Object, cfg tfsdk.Config, data *providerData, diags *diag.Diagnostics) engine.SourceSpec {
	attrs := src.Attributes()
	s := engine.SourceSpec{AllowOlderSnapshot: boolOf(attrs["allow_older_snapshot"])}
	for _, k := range vmSourceKinds {
		if v := attrs[k.name()]; v != nil && !v.IsNull() && !v.IsUnknown() {
			k.spec(ctx, v, specInputs{config: cfg, at: path.Root("source").AtName(k.name()), data: data}, &s, diags)
		}
	}
	return s
}

// vmSourceFromSpec rebuilds a VM's source from a report's request.
func vmSourceFromSpec(ctx context.Context, s engine.SourceSpec, diags *diag.Diagnostics) types.Object {
	ts := vmSourceAttrTypes()
	vals := map[string]attr.Value{"allow_older_snapshot": types.BoolValue(s.AllowOlderSnapshot)}
	for _, k := range vmSourceKinds {
		v, ok := k.fromSpec(ctx, s, diags)
		if !ok {
			v = absentOf(ctx, ts[k.name()])
		}
		vals[k.name()] = v
	}
	obj, d := types.ObjectValue(ts, vals)
	diags.Append(d...)
	return obj
}

// vmxKind is a VMware VM folder, named by its .vmx.
type vmxKind struct{}

func (vmxKind) name() string { return "vmx" }

func (vmxKind) schema() kindSchema {
	return kindSchema{attr: schema.StringAttribute{
		Optional: true,
		MarkdownDescription: "Path of a VMware VM's `.vmx`. Its hard disks (`scsiX:Y`, `sataX:Y`, `nvmeX:Y`, `ideX:Y`) are converted in controller order, " +
			"each from the file the `.vmx` names (the current snapshot) down its chain; CD-ROMs and absent devices are left out. " +
			"Every disk file must lie in the `.vmx`'s folder. The `.vmx` is read strictly: a line vmconv cannot read with certainty fails the plan, naming it.",
		Validators:    []validator.String{stringvalidator.LengthAtLeast(1)},
		PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()},
	}}
}

func (vmxKind) spec(_ context.Context, v attr.Value, _ specInputs, s *engine.SourceSpec, _ *diag.Diagnostics) {
	s.VMX = stringOf(v)
}

func (vmxKind) fromSpec(_ context.Context, s engine.SourceSpec, _ *diag.Diagnostics) (attr.Value, bool) {
	if s.VMX == "" {
		return nil, false
	}
	return types.StringValue(s.VMX), true
}
