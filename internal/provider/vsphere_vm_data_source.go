package provider

import (
	"context"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/vmconv/terraform-provider-vmconv/engine"
	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
)

var (
	_ datasource.DataSource              = &vsphereVMDataSource{}
	_ datasource.DataSourceWithConfigure = &vsphereVMDataSource{}
)

// NewVSphereVMDataSource is the vmconv_vsphere_vm constructor.
func NewVSphereVMDataSource() datasource.DataSource { return &vsphereVMDataSource{} }

type vsphereVMDataSource struct {
	data *providerData
}

type vsphereVMModel struct {
	URL               types.String `tfsdk:"url"`
	Datacenter        types.String `tfsdk:"datacenter"`
	VM                types.String `tfsdk:"vm"`
	Thumbprint        types.String `tfsdk:"thumbprint"`
	Insecure          types.Bool   `tfsdk:"insecure"`
	ID                types.String `tfsdk:"id"`
	Name              types.String `tfsdk:"name"`
	GuestID           types.String `tfsdk:"guest_id"`
	GuestName         types.String `tfsdk:"guest_name"`
	Firmware          types.String `tfsdk:"firmware"`
	CPUs              types.Int64  `tfsdk:"cpus"`
	Memory            types.Int64  `tfsdk:"memory"`
	Snapshots         types.Int64  `tfsdk:"snapshots"`
	Disks             types.List   `tfsdk:"disks"`
	NetworkInterfaces types.List   `tfsdk:"network_interfaces"`
}

var (
	vsDiskAttrTypes = map[string]attr.Type{"label": types.StringType, "capacity": types.Int64Type, "backing": types.StringType,
		"datastore": types.StringType, "chain": types.ListType{ElemType: types.StringType}, "device": types.StringType}
	vsNICAttrTypes = map[string]attr.Type{"label": types.StringType, "network": types.StringType, "model": types.StringType, "mac": types.StringType}
)

func (d *vsphereVMDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_vsphere_vm"
}

func (d *vsphereVMDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	str := func(desc string) schema.Attribute {
		return schema.StringAttribute{Computed: true, MarkdownDescription: desc}
	}
	num := func(desc string) schema.Attribute {
		return schema.Int64Attribute{Computed: true, MarkdownDescription: desc}
	}
	resp.Schema = schema.Schema{
		MarkdownDescription: "A VM's inventory in vCenter or ESXi, read with govmomi: CPUs, memory, firmware, disks with their snapshot backing chains, and NICs " +
			"with their MAC addresses. Use it to give a `vmconv_kvm_domain` the same shape as the VM it migrates. Credentials come from the provider's " +
			"`vsphere_username` and `vsphere_password` (or `VSPHERE_USER` and `VSPHERE_PASSWORD`).",
		Attributes: map[string]schema.Attribute{
			"url":        schema.StringAttribute{Required: true, MarkdownDescription: "The SDK endpoint, such as `https://vcenter.example/sdk`."},
			"datacenter": schema.StringAttribute{Optional: true, MarkdownDescription: "The datacenter; may be omitted when there is only one."},
			"vm":         schema.StringAttribute{Required: true, MarkdownDescription: "The VM's name or inventory path."},
			"thumbprint": schema.StringAttribute{Optional: true, MarkdownDescription: "Pins the server certificate's SHA-1 or SHA-256 thumbprint, for certificates no trusted authority signed."},
			"insecure":   schema.BoolAttribute{Optional: true, MarkdownDescription: "Skip certificate verification. For lab systems only."},
			"id":         str("The VM's BIOS UUID."),
			"name":       str("The VM's name."),
			"guest_id":   str("The configured guest OS identifier, such as `debian12_64Guest`."),
			"guest_name": str("The configured guest OS, in words."),
			"firmware":   str("`bios` or `uefi`."),
			"cpus":       num("Virtual CPUs."),
			"memory":     num("Memory in MiB."),
			"snapshots":  num("How many snapshots the VM has."),
			"disks": schema.ListNestedAttribute{Computed: true, MarkdownDescription: "The virtual disks, in controller order (SCSI, SATA, NVMe, IDE; then controller and unit): the order `source.vsphere.disk` counts in and a whole VM attaches them.",
				NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
					"label":     str("The disk's label, such as `Hard disk 1`."),
					"device":    str("Where the VM attaches it, such as `scsi0:1`; empty when vSphere does not say."),
					"capacity":  num("Its size in bytes."),
					"backing":   str("`flat`, `sparse`, `sesparse` or `rdm`."),
					"datastore": str("The datastore of its newest file."),
					"chain":     schema.ListAttribute{Computed: true, ElementType: types.StringType, MarkdownDescription: "Its files, newest first, as datastore paths (`[ds] vm/vm-000001.vmdk`)."},
				}}},
			"network_interfaces": schema.ListNestedAttribute{Computed: true, MarkdownDescription: "The network adapters.",
				NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
					"label":   str("The adapter's label."),
					"network": str("The port group it is connected to."),
					"model":   str("`vmxnet3`, `e1000`, `e1000e`..."),
					"mac":     str("Its MAC address."),
				}}},
		},
	}
}

func (d *vsphereVMDataSource) Configure(_ context.Context, req datasource.ConfigureRequest, resp *datasource.ConfigureResponse) {
	d.data = configured(req.ProviderData, &resp.Diagnostics)
}

func (d *vsphereVMDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	if d.data == nil {
		resp.Diagnostics.AddError(summaryUnconfigured, unconfiguredDetail("reading a vSphere VM"))
		return
	}
	var m vsphereVMModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	vm, err := engine.DescribeVSphereVM(ctx, engine.VSphereSpec{URL: m.URL.ValueString(), Datacenter: m.Datacenter.ValueString(), VM: m.VM.ValueString(),
		Thumbprint: m.Thumbprint.ValueString(), Insecure: m.Insecure.ValueBool(), Username: d.data.vsphereUser, Password: d.data.vspherePassword})
	if err != nil {
		addFaultAt(&resp.Diagnostics, vsphereAttributeFor(err, &m), "Reading the VM from vSphere", err)
		return
	}
	m.ID, m.Name = types.StringValue(vm.UUID), types.StringValue(vm.Name)
	m.GuestID, m.GuestName, m.Firmware = types.StringValue(vm.GuestID), types.StringValue(vm.GuestName), types.StringValue(vm.Firmware)
	m.CPUs, m.Memory, m.Snapshots = types.Int64Value(int64(vm.CPUs)), types.Int64Value(int64(vm.MemoryMiB)), types.Int64Value(int64(vm.Snapshots))
	var disks, nics []attr.Value
	for _, dk := range vm.Disks {
		disks = append(disks, types.ObjectValueMust(vsDiskAttrTypes, map[string]attr.Value{
			"label": types.StringValue(dk.Label), "capacity": types.Int64Value(dk.Capacity), "backing": types.StringValue(dk.Backing),
			"datastore": types.StringValue(dk.Datastore), "chain": strList(dk.Chain), "device": types.StringValue(dk.Device),
		}))
	}
	for _, n := range vm.NICs {
		nics = append(nics, types.ObjectValueMust(vsNICAttrTypes, map[string]attr.Value{
			"label": types.StringValue(n.Label), "network": types.StringValue(n.Network), "model": types.StringValue(n.Model), "mac": types.StringValue(n.MAC),
		}))
	}
	m.Disks = types.ListValueMust(types.ObjectType{AttrTypes: vsDiskAttrTypes}, disks)
	m.NetworkInterfaces = types.ListValueMust(types.ObjectType{AttrTypes: vsNICAttrTypes}, nics)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

// vsphereAttributeFor points a fault at the setting it is about: the VM or
// the datacenter it names, or else the connection (URL, certificate,
// credentials).
func vsphereAttributeFor(err error, m *vsphereVMModel) path.Path {
	fe, ok := fault.As(err)
	switch {
	case !ok:
		return path.Root("url")
	case fe.File == m.VM.ValueString():
		return path.Root("vm")
	case fe.File != "" && fe.File == m.Datacenter.ValueString():
		return path.Root("datacenter")
	}
	return path.Root("url")
}
