package provider

import (
	"context"
	"regexp"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework-validators/int64validator"
	"github.com/hashicorp/terraform-plugin-framework-validators/listvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/identityschema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/booldefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64default"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/listplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/tfsdk"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/vmconv/terraform-provider-vmconv/engine"
	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/internal/provider/validators"
)

var (
	_ resource.Resource                = &kvmDomainResource{}
	_ resource.ResourceWithConfigure   = &kvmDomainResource{}
	_ resource.ResourceWithModifyPlan  = &kvmDomainResource{}
	_ resource.ResourceWithImportState = &kvmDomainResource{}
	_ resource.ResourceWithIdentity    = &kvmDomainResource{}
)

// NewKVMDomainResource is the vmconv_kvm_domain constructor.
func NewKVMDomainResource() resource.Resource {
	return &kvmDomainResource{}
}

type kvmDomainResource struct {
	data *providerData
}

type kvmDomainModel struct {
	ID                types.String   `tfsdk:"id"`
	Name              types.String   `tfsdk:"name"`
	Memory            types.Int64    `tfsdk:"memory"`
	VCPUs             types.Int64    `tfsdk:"vcpus"`
	Firmware          types.String   `tfsdk:"firmware"`
	Disks             []domainDisk   `tfsdk:"disks"`
	NetworkInterfaces []domainNIC    `tfsdk:"network_interfaces"`
	Running           types.Bool     `tfsdk:"running"`
	BootTest          types.Object   `tfsdk:"boot_test"`
	InitialBootBus    types.String   `tfsdk:"initial_boot_bus"`
	ShutdownTimeout   types.String   `tfsdk:"shutdown_timeout"`
	Timeouts          timeouts.Value `tfsdk:"timeouts"`
	UUID              types.String   `tfsdk:"uuid"`
	MACAddresses      types.List     `tfsdk:"mac_addresses"`
	ConsoleLog        types.String   `tfsdk:"console_log"`
	XML               types.String   `tfsdk:"xml"`
	BootTestResult    types.Object   `tfsdk:"boot_test_result"`
	BootPhases        types.List     `tfsdk:"boot_phases"`
}

type domainDisk struct {
	Path    types.String `tfsdk:"path"`
	Pool    types.String `tfsdk:"pool"`
	Volume  types.String `tfsdk:"volume"`
	Bus     types.String `tfsdk:"bus"`
	Overlay types.String `tfsdk:"overlay"`
}

type domainNIC struct {
	Network types.String `tfsdk:"network"`
	User    types.Bool   `tfsdk:"user"`
	Model   types.String `tfsdk:"model"`
	MAC     types.String `tfsdk:"mac"`
}

type domainBootTest struct {
	Enabled        types.Bool   `tfsdk:"enabled"`
	Timeout        types.String `tfsdk:"timeout"`
	SuccessPattern types.String `tfsdk:"success_pattern"`
	RequireNetwork types.Bool   `tfsdk:"require_network"`
}

var (
	domainBootAttrTypes = map[string]attr.Type{
		"enabled": types.BoolType, "timeout": types.StringType, "success_pattern": types.StringType, "require_network": types.BoolType,
	}
	phaseAttrTypes = map[string]attr.Type{
		"disk_bus": types.StringType, "status": types.StringType, "reason": types.StringType, "duration_seconds": types.Float64Type,
	}
	domainName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$`)
)

const (
	defaultDomainCreateTimeout = 60 * time.Minute
	defaultDomainUpdateTimeout = 30 * time.Minute
	defaultDomainDeleteTimeout = 10 * time.Minute
)

func (r *kvmDomainResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_kvm_domain"
}

func (r *kvmDomainResource) Schema(ctx context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "A KVM domain, defined and started in libvirt, for migrated disks. Each disk is attached as a qcow2 overlay the domain owns, " +
			"backed by the converted image: the guest never writes the converted image, so running it never makes Terraform rebuild the conversion, " +
			"and the conversion refuses to be destroyed while a domain uses it. With a boot test, the apply waits until the guest reaches multi-user with its network up.",
		// Settings are blocks, so that a misspelt one fails the plan (see
		// sourceKind).
		Blocks: map[string]schema.Block{
			"disks": schema.ListNestedBlock{
				MarkdownDescription: "Disks, in boot order, one block each (at least one). Changing them replaces the domain.",
				Validators:          []validator.List{listvalidator.IsRequired(), listvalidator.SizeAtLeast(1)},
				PlanModifiers:       []planmodifier.List{listplanmodifier.RequiresReplace()},
				NestedObject: schema.NestedBlockObject{Validators: []validator.Object{validators.ExactlyOneOf("path", "pool")}, Attributes: map[string]schema.Attribute{
					"path": schema.StringAttribute{Optional: true, MarkdownDescription: "A converted image on this machine, typically `vmconv_disk_conversion.<name>.output.path`. Set `path`, or `pool` and `volume`."},
					"pool": schema.StringAttribute{Optional: true,
						MarkdownDescription: "A storage pool on the provider's libvirt host holding the converted volume (`vmconv_disk_conversion.<name>.output.pool`). " +
							"The domain's own disk is then a qcow2 volume `<name>-disk<N>.qcow2` in the same pool, backed by `volume`; the boot test reads the serial console through libvirt. " +
							"Every disk of a domain is a file, or every disk a volume.",
						Validators: []validator.String{stringvalidator.AlsoRequires(path.MatchRelative().AtParent().AtName("volume"))}},
					"volume": schema.StringAttribute{Optional: true, MarkdownDescription: "The converted volume in `pool` (`vmconv_disk_conversion.<name>.output.volume`).",
						Validators: []validator.String{stringvalidator.AlsoRequires(path.MatchRelative().AtParent().AtName("pool"))}},
					"bus": schema.StringAttribute{Optional: true, Computed: true, Default: stringdefault.StaticString("virtio"),
						MarkdownDescription: "`virtio` (default), `sata` or `scsi` (virtio-scsi).", Validators: []validator.String{stringvalidator.OneOf("virtio", "sata", "scsi")}},
					"overlay": schema.StringAttribute{Computed: true, MarkdownDescription: "The domain's own disk: a qcow2 overlay on the converted image, a file path, or `volume:<pool>/<name>` for a pool volume.",
						PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()}},
				}},
			},
			// Optional
			"network_interfaces": schema.ListNestedBlock{
				MarkdownDescription: "NICs, one block each. Each is on a libvirt `network`, or `user = true` for user-mode networking (no host services needed). Changing them replaces the domain.",
				PlanModifiers:       []planmodifier.List{listplanmodifier.RequiresReplace()},
				NestedObject: schema.NestedBlockObject{Attributes: map[string]schema.Attribute{
					"network": schema.StringAttribute{Optional: true, MarkdownDescription: "A libvirt network, such as `default`."},
					"user":    schema.BoolAttribute{Optional: true, MarkdownDescription: "User-mode networking instead of a libvirt network."},
					"model": schema.StringAttribute{Optional: true, Computed: true, Default: stringdefault.StaticString("virtio"),
						MarkdownDescription: "`virtio` (default), `e1000e`, `e1000`, `vmxnet3` or `rtl8139`. Windows has an inbox driver for `e1000e`.", Validators: []validator.String{stringvalidator.OneOf("virtio", "e1000e", "e1000", "vmxnet3", "rtl8139")}},
					"mac": schema.StringAttribute{Optional: true, Computed: true,
						MarkdownDescription: "MAC address; generated (52:54:00:…) when not set. Set it to the source's to carry the MAC over (with the conversion's `fixes.keep_network_identity`).",
						Validators:          []validator.String{stringvalidator.RegexMatches(regexp.MustCompile(`^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$`), "must be a MAC address like 52:54:00:12:34:56")},
						PlanModifiers:       []planmodifier.String{stringplanmodifier.UseStateForUnknown()}},
				}},
			},
			"boot_test": schema.SingleNestedBlock{
				MarkdownDescription: "At creation, wait until the guest reaches multi-user with its network up, judged like the conversion's boot test. " +
					"Without the block, the test runs with its defaults (and requires the network when the domain has a network interface). " +
					"A one-shot marker unit is planted on the domain's disk for that boot; it restores the boot configuration and removes itself after reporting.",
				Attributes: map[string]schema.Attribute{
					"enabled": schema.BoolAttribute{Optional: true, Computed: true, Default: booldefault.StaticBool(true), MarkdownDescription: "Default `true`."},
					"timeout": schema.StringAttribute{Optional: true, MarkdownDescription: "Duration. Default 5 minutes under KVM, 15 under software emulation.",
						Validators: []validator.String{validators.Duration(10*time.Second, 2*time.Hour)}},
					"success_pattern": schema.StringAttribute{Optional: true, MarkdownDescription: "A regular expression on the serial console that counts as success instead of the marker."},
					"require_network": schema.BoolAttribute{Optional: true, Computed: true, Default: booldefault.StaticBool(true),
						MarkdownDescription: "Require an IPv4 address. Default `true`, or `false` for a domain without `network_interfaces` (the plan warns); `true` with no network interface fails the plan."},
				},
			},
			"timeouts": timeoutsBlock(ctx),
		},
		Attributes: map[string]schema.Attribute{
			// Required
			"name": schema.StringAttribute{
				Required: true, MarkdownDescription: "Domain name. Changing it replaces the domain.",
				Validators:    []validator.String{stringvalidator.RegexMatches(domainName, "must be 1-64 letters, digits, '_', '.', '+' or '-', starting with a letter or digit")},
				PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()},
			},
			"memory": schema.Int64Attribute{Optional: true, Computed: true, Default: int64default.StaticInt64(1024),
				MarkdownDescription: "Memory in MiB. Default 1024. Changing it shuts the guest down gracefully and starts it again.",
				Validators:          []validator.Int64{int64validator.Between(128, 4*1024*1024)}},
			"vcpus": schema.Int64Attribute{Optional: true, Computed: true, Default: int64default.StaticInt64(1),
				MarkdownDescription: "Virtual CPUs. Default 1. Changed like memory.", Validators: []validator.Int64{int64validator.Between(1, 512)}},
			"firmware": schema.StringAttribute{Optional: true, Computed: true,
				MarkdownDescription: "`bios` or `uefi` (OVMF). Default: what inspection found in the first disk's conversion, else `bios`. Changing it replaces the domain.",
				Validators:          []validator.String{stringvalidator.OneOf("bios", "uefi")},
				PlanModifiers:       []planmodifier.String{stringplanmodifier.RequiresReplace(), stringplanmodifier.UseStateForUnknown()}},
			"running": schema.BoolAttribute{Optional: true, Computed: true, Default: booldefault.StaticBool(true),
				MarkdownDescription: "Keep the domain running. Default `true`; `false` shuts it down gracefully."},
			"initial_boot_bus": schema.StringAttribute{Optional: true,
				MarkdownDescription: "Boot first with every disk on this bus (`sata`), wait for the guest, shut it down, then boot on the disks' own bus: " +
					"for guests that need one boot on an emulated controller to activate their virtio drivers. The switch happens when the first boot's test passes, so it needs " +
					"`running`, an enabled `boot_test`, and a Linux guest or a `boot_test.success_pattern`; otherwise the plan fails rather than boot straight on the final bus. Each phase is reported in `boot_phases`.",
				Validators:    []validator.String{stringvalidator.OneOf("sata")},
				PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()}},
			"shutdown_timeout": schema.StringAttribute{Optional: true, Computed: true, Default: stringdefault.StaticString("3m"),
				MarkdownDescription: "How long a graceful (ACPI) shutdown may take before the domain is forced off. Default `3m`.",
				Validators:          []validator.String{validators.Duration(time.Second, time.Hour)}},
			// Computed
			"id":   schema.StringAttribute{Computed: true, MarkdownDescription: "The domain's UUID.", PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()}},
			"uuid": schema.StringAttribute{Computed: true, MarkdownDescription: "The domain's UUID.", PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()}},
			"mac_addresses": schema.ListAttribute{Computed: true, ElementType: types.StringType, MarkdownDescription: "The NICs' MAC addresses, in order.",
				PlanModifiers: []planmodifier.List{listplanmodifier.UseStateForUnknown()}},
			"console_log": schema.StringAttribute{Computed: true, MarkdownDescription: "Path of the serial console log.",
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()}},
			"xml":              schema.StringAttribute{Computed: true, MarkdownDescription: "The domain's libvirt definition."},
			"boot_test_result": bootTestResultAttribute("The boot test at creation (the last phase)."),
			"boot_phases": schema.ListNestedAttribute{Computed: true, MarkdownDescription: "Each boot at creation: one, or two with `initial_boot_bus`.",
				PlanModifiers: []planmodifier.List{listplanmodifier.UseStateForUnknown()},
				NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
					"disk_bus":         schema.StringAttribute{Computed: true, MarkdownDescription: "Bus the disks were on."},
					"status":           schema.StringAttribute{Computed: true, MarkdownDescription: "`passed` or `failed`."},
					"reason":           schema.StringAttribute{Computed: true, MarkdownDescription: "As in `boot_test_result`."},
					"duration_seconds": schema.Float64Attribute{Computed: true, MarkdownDescription: "How long the phase took."},
				}}},
		},
	}
}

func (r *kvmDomainResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.data = configured(req.ProviderData, &resp.Diagnostics)
}

func (r *kvmDomainResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if req.Plan.Raw.IsNull() || r.data == nil {
		return
	}
	var plan kvmDomainModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if r.planBootNetwork(ctx, req, &plan, &resp.Diagnostics) {
		resp.Diagnostics.Append(resp.Plan.Set(ctx, &plan)...)
		r.keepUnchanged(ctx, req, &plan, resp)
	}
	if resp.Diagnostics.HasError() || plan.Name.IsUnknown() {
		return
	}
	for _, d := range plan.Disks {
		if d.Path.IsUnknown() || d.Pool.IsUnknown() || d.Volume.IsUnknown() {
			return // decided at apply
		}
	}
	dreq := r.toRequest(ctx, &plan)
	if plan.Firmware.IsUnknown() {
		plan.Firmware = types.StringValue(r.data.engine.DomainFirmware(dreq))
		resp.Diagnostics.Append(resp.Plan.Set(ctx, &plan)...)
	}
	if !req.State.Raw.IsNull() {
		return
	}
	dreq.Firmware = plan.Firmware.ValueString()
	if err := r.data.engine.CheckDomain(ctx, dreq, false); err != nil {
		addFaultAt(&resp.Diagnostics, attrForDomainFault(err), "Planning the domain", err)
	}
}

// planBootNetwork: a domain without a network interface can boot-test
// everything but its network. Unless the configuration sets
// boot_test.require_network, the test then does not require it, and a plan
// that creates the domain says so; set to true, CheckDomain refuses the
// plan. It reports whether it changed the plan.
func (r *kvmDomainResource) planBootNetwork(ctx context.Context, req resource.ModifyPlanRequest, plan *kvmDomainModel, diags *diagDiagnostics) bool {
	if len(plan.NetworkInterfaces) > 0 || plan.BootTest.IsUnknown() {
		return false
	}
	if plan.BootTest.IsNull() {
		// The defaults: the test runs and, without a NIC, does not
		// require the network (domainRequest).
		if req.State.Raw.IsNull() && plan.Running.ValueBool() {
			diags.AddAttributeWarning(path.Root("network_interfaces"), summaryBootTestNoNetwork, bootTestNoNetworkDetail)
		}
		return false
	}
	var set types.Bool
	diags.Append(req.Config.GetAttribute(ctx, path.Root("boot_test").AtName("require_network"), &set)...)
	var bt domainBootTest
	diags.Append(plan.BootTest.As(ctx, &bt, objectAsOptions)...)
	if diags.HasError() || !set.IsNull() {
		return false
	}
	if req.State.Raw.IsNull() && bt.Enabled.ValueBool() && plan.Running.ValueBool() && bt.SuccessPattern.IsNull() {
		diags.AddAttributeWarning(path.Root("network_interfaces"), summaryBootTestNoNetwork, bootTestNoNetworkDetail)
	}
	if bt.RequireNetwork.Equal(types.BoolValue(false)) {
		return false
	}
	attrs := plan.BootTest.Attributes()
	attrs["require_network"] = types.BoolValue(false)
	plan.BootTest = types.ObjectValueMust(domainBootAttrTypes, attrs)
	return true
}

// keepUnchanged undoes what the framework did before ModifyPlan ran: the
// boot_test default (require_network = true) differed from the state, so it
// marked xml unknown, which shows as a change. Once planBootNetwork has
// planned the state's value again, a plan equal to the state is no change.
func (r *kvmDomainResource) keepUnchanged(ctx context.Context, req resource.ModifyPlanRequest, plan *kvmDomainModel, resp *resource.ModifyPlanResponse) {
	if req.State.Raw.IsNull() || !plan.XML.IsUnknown() {
		return
	}
	var xml types.String
	resp.Diagnostics.Append(req.State.GetAttribute(ctx, path.Root("xml"), &xml)...)
	plan.XML = xml
	resp.Diagnostics.Append(resp.Plan.Set(ctx, plan)...)
	if !resp.Plan.Raw.Equal(req.State.Raw) {
		plan.XML = types.StringUnknown()
		resp.Diagnostics.Append(resp.Plan.Set(ctx, plan)...)
	}
}

func (r *kvmDomainResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	if r.data == nil {
		resp.Diagnostics.AddError(summaryUnconfigured, unconfiguredDetail("creating a domain"))
		return
	}
	var plan kvmDomainModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, d := plan.Timeouts.Create(ctx, defaultDomainCreateTimeout)
	resp.Diagnostics.Append(d...)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	dreq := r.toRequest(ctx, &plan)
	st, err := r.data.engine.CreateDomain(ctx, dreq, newLogSink(ctx, "vmconv_kvm_domain", dreq.Name))
	if err != nil {
		addFaultAt(&resp.Diagnostics, attrForDomainFault(err), "Creating the domain", err)
		return
	}
	r.fromState(&plan, st)
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
	resp.Diagnostics.Append(setDomainIdentity(ctx, plan.UUID, plan.Name, resp.Identity)...)
}

func (r *kvmDomainResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	if r.data == nil {
		return
	}
	var state kvmDomainModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	key := state.UUID.ValueString()
	if key == "" {
		key = state.ID.ValueString() // after import: a name or UUID
	}
	live, ok, err := r.data.engine.ReadDomain(key)
	if err != nil {
		addFault(&resp.Diagnostics, "Reading the domain", err)
		return
	}
	if !ok {
		// After an import of a domain that is not there, the identity is
		// the name or UUID given: Terraform then says it does not exist.
		uuid, name := state.UUID, state.Name
		if uuid.ValueString() == "" && name.ValueString() == "" {
			name = types.StringValue(key)
		}
		resp.Diagnostics.Append(setDomainIdentity(ctx, uuid, name, resp.Identity)...)
		resp.State.RemoveResource(ctx) // deleted outside Terraform: recreated on the next apply
		return
	}
	state.ID, state.UUID, state.Name = types.StringValue(live.Info.UUID), types.StringValue(live.Info.UUID), types.StringValue(live.Info.Name)
	resp.Diagnostics.Append(setDomainIdentity(ctx, state.UUID, state.Name, resp.Identity)...)
	state.Memory, state.VCPUs = types.Int64Value(int64(live.MemoryMiB)), types.Int64Value(int64(live.VCPUs))
	state.Firmware = types.StringValue(live.Firmware)
	state.Running = types.BoolValue(live.Running())
	state.XML = types.StringValue(live.XML)
	state.MACAddresses = strList(live.MACs)
	if state.Disks == nil {
		state.fillImported(live)
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
}

// fillImported rebuilds the configuration side of an imported domain from
// its definition: a vmconv overlay's backing file is the converted image.
func (m *kvmDomainModel) fillImported(live engine.LiveDomain) {
	for _, d := range live.Disks {
		base := d.Path
		if d.Backing != "" {
			base = d.Backing
		}
		disk := domainDisk{Path: types.StringValue(base), Pool: types.StringNull(), Volume: types.StringNull(), Bus: types.StringValue(d.Bus), Overlay: types.StringValue(d.Path)}
		if pool, vol, ok := engine.ParseVolumeRef(base); ok {
			disk.Path, disk.Pool, disk.Volume = types.StringNull(), types.StringValue(pool), types.StringValue(vol)
		}
		m.Disks = append(m.Disks, disk)
	}
	for i, n := range live.NICs {
		nic := domainNIC{Model: types.StringValue(n.Model), MAC: types.StringValue(live.MACs[i]), Network: types.StringNull(), User: types.BoolNull()}
		if n.User {
			nic.User = types.BoolValue(true)
		} else {
			nic.Network = types.StringValue(n.Network)
		}
		m.NetworkInterfaces = append(m.NetworkInterfaces, nic)
	}
	// The defaults, as a configuration without the block has them.
	m.BootTest = types.ObjectNull(domainBootAttrTypes)
	if m.NetworkInterfaces == nil {
		m.NetworkInterfaces = []domainNIC{}
	}
	m.ShutdownTimeout = types.StringValue("3m")
	m.InitialBootBus = types.StringNull()
	m.BootTestResult = types.ObjectNull(bootResultAttrTypes)
	m.BootPhases = types.ListValueMust(types.ObjectType{AttrTypes: phaseAttrTypes}, []attr.Value{})
	m.ConsoleLog = types.StringValue(live.ConsoleLog)
	m.Timeouts = timeouts.Value{Object: types.ObjectNull(map[string]attr.Type{
		"create": types.StringType, "read": types.StringType, "update": types.StringType, "delete": types.StringType,
	})}
}

func (r *kvmDomainResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	if r.data == nil {
		resp.Diagnostics.AddError(summaryUnconfigured, unconfiguredDetail("updating a domain"))
		return
	}
	var plan, state kvmDomainModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, d := plan.Timeouts.Update(ctx, defaultDomainUpdateTimeout)
	resp.Diagnostics.Append(d...)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	dreq := r.toRequest(ctx, &plan)
	st := r.engineState(&state)
	if err := r.data.engine.UpdateDomain(ctx, dreq, st); err != nil {
		addFault(&resp.Diagnostics, "Updating the domain", err)
		return
	}
	plan.XML = types.StringValue(st.XML)
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
	resp.Diagnostics.Append(setDomainIdentity(ctx, plan.UUID, plan.Name, resp.Identity)...)
}

func (r *kvmDomainResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	if r.data == nil {
		resp.Diagnostics.AddError(summaryUnconfigured, unconfiguredDetail("deleting a domain"))
		return
	}
	var state kvmDomainModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, d := state.Timeouts.Delete(ctx, defaultDomainDeleteTimeout)
	resp.Diagnostics.Append(d...)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var disks, overlays []string
	for _, dd := range state.Disks {
		disks, overlays = append(disks, dd.Path.ValueString()), append(overlays, dd.Overlay.ValueString())
	}
	// shutdown_timeout bounds the graceful stop before the domain is forced off.
	shutdown, _ := time.ParseDuration(state.ShutdownTimeout.ValueString())
	if err := r.data.engine.DeleteDomain(ctx, state.Name.ValueString(), disks, overlays, shutdown); err != nil {
		addFault(&resp.Diagnostics, "Deleting the domain", err)
	}
}

func (r *kvmDomainResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	id := req.ID
	if id == "" && req.Identity != nil {
		// Read finds a domain by its UUID or its name.
		var uuid, name types.String
		resp.Diagnostics.Append(req.Identity.GetAttribute(ctx, path.Root("uuid"), &uuid)...)
		resp.Diagnostics.Append(req.Identity.GetAttribute(ctx, path.Root("name"), &name)...)
		if id = uuid.ValueString(); id == "" {
			id = name.ValueString()
		}
		if id == "" {
			resp.Diagnostics.AddError("Invalid Import Identity", "The identity names the domain by uuid or by name: set one, for example identity = { name = \"web\" }.")
			return
		}
	}
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("id"), id)...)
}

// IdentitySchema: a domain is its UUID, on the provider's libvirt host;
// its name, unique there too, is the other way to import it.
func (r *kvmDomainResource) IdentitySchema(_ context.Context, _ resource.IdentitySchemaRequest, resp *resource.IdentitySchemaResponse) {
	resp.IdentitySchema = identityschema.Schema{Attributes: map[string]identityschema.Attribute{
		"uuid": identityschema.StringAttribute{OptionalForImport: true, Description: "The domain's UUID. Set it, or name."},
		"name": identityschema.StringAttribute{OptionalForImport: true, Description: "The domain's name."},
	}}
}

func setDomainIdentity(ctx context.Context, uuid, name types.String, identity *tfsdk.ResourceIdentity) diag.Diagnostics {
	if identity == nil || uuid.ValueString() == "" && name.ValueString() == "" {
		return nil
	}
	var diags diag.Diagnostics
	diags.Append(identity.SetAttribute(ctx, path.Root("uuid"), uuid)...)
	diags.Append(identity.SetAttribute(ctx, path.Root("name"), name)...)
	return diags
}

func (r *kvmDomainResource) toRequest(ctx context.Context, m *kvmDomainModel) engine.DomainRequest {
	d := engine.DomainRequest{
		Name: m.Name.ValueString(), MemoryMiB: int(m.Memory.ValueInt64()), VCPUs: int(m.VCPUs.ValueInt64()),
		Running: m.Running.ValueBool(), InitialBootBus: m.InitialBootBus.ValueString(),
	}
	if !m.Firmware.IsUnknown() {
		d.Firmware = m.Firmware.ValueString()
	}
	if t, err := time.ParseDuration(m.ShutdownTimeout.ValueString()); err == nil {
		d.ShutdownTimeout = t
	}
	for _, disk := range m.Disks {
		d.Disks = append(d.Disks, engine.DomainDisk{Source: disk.Path.ValueString(), Pool: disk.Pool.ValueString(), Volume: disk.Volume.ValueString(), Bus: disk.Bus.ValueString()})
	}
	for _, n := range m.NetworkInterfaces {
		nic := engine.DomainNIC{Network: n.Network.ValueString(), User: n.User.ValueBool(), Model: n.Model.ValueString()}
		if !n.MAC.IsUnknown() {
			nic.MAC = n.MAC.ValueString()
		}
		d.NICs = append(d.NICs, nic)
	}
	var bt domainBootTest
	if m.BootTest.IsNull() {
		// No block: the defaults, which require the network only where
		// there is one.
		d.BootTest.Enabled, d.BootTest.RequireNetwork = true, len(m.NetworkInterfaces) > 0
	} else if !m.BootTest.IsUnknown() {
		m.BootTest.As(ctx, &bt, objectAsOptions)
		d.BootTest.Enabled = bt.Enabled.ValueBool()
		d.BootTest.SuccessPattern = bt.SuccessPattern.ValueString()
		d.BootTest.RequireNetwork = bt.RequireNetwork.ValueBool()
		if t, err := time.ParseDuration(bt.Timeout.ValueString()); err == nil {
			d.BootTest.Timeout = t
		}
	}
	return d
}

func (r *kvmDomainResource) fromState(m *kvmDomainModel, st *engine.DomainState) {
	m.ID, m.UUID = types.StringValue(st.UUID), types.StringValue(st.UUID)
	m.Firmware = types.StringValue(st.Firmware)
	m.XML, m.ConsoleLog = types.StringValue(st.XML), types.StringValue(st.ConsoleLog)
	m.MACAddresses = strList(st.MACs)
	for i := range m.Disks {
		m.Disks[i].Overlay = types.StringValue(st.Overlays[i])
	}
	for i := range m.NetworkInterfaces {
		m.NetworkInterfaces[i].MAC = types.StringValue(st.MACs[i])
	}
	m.BootTestResult = bootResultValue(st.BootTest)
	var phases []attr.Value
	for _, p := range st.Phases {
		phases = append(phases, types.ObjectValueMust(phaseAttrTypes, map[string]attr.Value{
			"disk_bus": types.StringValue(p.DiskBus), "status": types.StringValue(p.Status), "reason": types.StringValue(p.Reason),
			"duration_seconds": types.Float64Value(float64(p.DurationMS) / 1000),
		}))
	}
	m.BootPhases = types.ListValueMust(types.ObjectType{AttrTypes: phaseAttrTypes}, phases)
}

func (r *kvmDomainResource) engineState(m *kvmDomainModel) *engine.DomainState {
	st := &engine.DomainState{UUID: m.UUID.ValueString(), Firmware: m.Firmware.ValueString(), ConsoleLog: m.ConsoleLog.ValueString()}
	for _, d := range m.Disks {
		st.Overlays = append(st.Overlays, d.Overlay.ValueString())
	}
	for _, n := range m.NetworkInterfaces {
		st.MACs = append(st.MACs, n.MAC.ValueString())
	}
	return st
}

func attrForDomainFault(err error) path.Path {
	switch fault.CodeOf(err) {
	case fault.FirmwareMissing:
		return path.Root("firmware")
	case fault.SourceMissing, fault.UnknownFormat, fault.InvalidRequest, fault.DiskUnreachable:
		return path.Root("disks")
	case fault.BootTestImpossible:
		return path.Root("boot_test").AtName("require_network")
	}
	return path.Root("name")
}
