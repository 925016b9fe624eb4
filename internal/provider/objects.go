package provider

import (
	"context"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/listplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/objectplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/vmconv/terraform-provider-vmconv/engine"
)

// The computed objects that several resources and data sources show (the
// guest, a boot test's result, a change the fixes made or plan to make) are
// each defined here once, as a list of fields from which their attribute
// types, their schema and their documentation are all derived, so that the
// three cannot disagree.

// field is one attribute of a computed object.
type field struct {
	name string
	typ  attr.Type
	desc string
}

var stringList = types.ListType{ElemType: types.StringType}

var guestFields = []field{
	{"os", types.StringType, "`linux`, `windows`, or `none` for a disk without an operating system."},
	{"distro", types.StringType, "Distribution."},
	{"version", types.StringType, "Version, major.minor."},
	{"product_name", types.StringType, "Product name."},
	{"arch", types.StringType, "Architecture."},
	{"hostname", types.StringType, "Host name."},
	{"root", types.StringType, "Root device."},
	{"firmware", types.StringType, "`bios` or `uefi`."},
	{"bootloader", types.StringType, "Boot loader."},
	{"initramfs_tool", types.StringType, "`initramfs-tools` or `dracut`."},
	{"network_stacks", stringList, "Network configuration systems in use."},
	{"hypervisor_tools", stringList, "Hypervisor tools installed."},
	{"kernels", stringList, "Installed kernel versions."},
	{"filesystems", stringList, "File systems: device, type and mount point."},
	{"lvm", stringList, "LVM logical volumes."},
	{"selinux", types.StringType, "SELinux mode, if configured."},
}

var bootResultFields = []field{
	{"status", types.StringType, "`passed` or `failed`."},
	{"reason", types.StringType, "`success`, or why it failed: `root_not_found`, `kernel_panic`, `emergency_mode`, `no_bootloader`, `network_down`, `timeout`."},
	{"detail", types.StringType, "What was seen."},
	{"duration_seconds", types.Float64Type, "How long the boot took."},
	{"console_log", types.StringType, "Path of the serial console log, kept beside the output."},
	{"ip_addresses", stringList, "The guest's IPv4 addresses, as `interface=address/prefix`."},
	{"accel", types.StringType, "`kvm` or `tcg` (software emulation)."},
	{"disk_bus", types.StringType, "The disk bus booted."},
	{"nic_model", types.StringType, "The NIC model booted."},
	{"firmware", types.StringType, "`bios` or `uefi`."},
}

// changeFields describe a change the fixes made (fixes_applied).
var changeFields = []field{
	{"fix", types.StringType, "The fix that made the change."},
	{"action", types.StringType, "`modified`, `created`, `deleted` or `command`."},
	{"path", types.StringType, "The guest file changed."},
	{"command", types.StringType, "The command run in the guest, for `command`."},
	{"reason", types.StringType, "Why."},
	{"before_sha256", types.StringType, "The file's SHA-256 before."},
	{"after_sha256", types.StringType, "The file's SHA-256 after."},
}

// plannedFixFields describe a change the fixes' dry run at plan time says
// they will make (planned_fixes).
var plannedFixFields = []field{
	{"fix", types.StringType, "The fix."},
	{"action", types.StringType, "`write`, `remove` or `run`."},
	{"path", types.StringType, "The guest file changed."},
	{"command", types.StringType, "The command run in the guest."},
	{"reason", types.StringType, "Why."},
}

var (
	guestAttrTypes      = attrTypes(guestFields)
	bootResultAttrTypes = attrTypes(bootResultFields)
	changeAttrTypes     = attrTypes(changeFields)
	plannedFixAttrTypes = attrTypes(plannedFixFields)
)

func attrTypes(fs []field) map[string]attr.Type {
	out := make(map[string]attr.Type, len(fs))
	for _, f := range fs {
		out[f.name] = f.typ
	}
	return out
}

// computedAttributes is the resource schema of a computed object's fields.
func computedAttributes(fs []field) map[string]schema.Attribute {
	out := make(map[string]schema.Attribute, len(fs))
	for _, f := range fs {
		switch {
		case f.typ.Equal(types.Float64Type):
			out[f.name] = schema.Float64Attribute{Computed: true, MarkdownDescription: f.desc}
		case f.typ.Equal(types.Int64Type):
			out[f.name] = schema.Int64Attribute{Computed: true, MarkdownDescription: f.desc}
		case f.typ.Equal(stringList):
			out[f.name] = schema.ListAttribute{Computed: true, ElementType: types.StringType, MarkdownDescription: f.desc}
		default:
			out[f.name] = schema.StringAttribute{Computed: true, MarkdownDescription: f.desc}
		}
	}
	return out
}

// fieldNames lists the fields' names in backticks, for descriptions that
// name them.
func fieldNames(fs []field) string {
	names := make([]string, len(fs))
	for i, f := range fs {
		names[i] = f.name
	}
	return backticked(names)
}

func backticked(xs []string) string {
	q := make([]string, len(xs))
	for i, x := range xs {
		q[i] = "`" + x + "`"
	}
	return strings.Join(q, ", ")
}

// guestAttribute is a resource's computed guest object.
func guestAttribute(description string) schema.SingleNestedAttribute {
	return schema.SingleNestedAttribute{
		Computed: true, MarkdownDescription: description,
		PlanModifiers: []planmodifier.Object{objectplanmodifier.UseStateForUnknown()},
		Attributes:    computedAttributes(guestFields),
	}
}

// bootTestResultAttribute is a resource's computed boot test result; the
// description says which boot it reports.
func bootTestResultAttribute(description string) schema.SingleNestedAttribute {
	return schema.SingleNestedAttribute{
		Computed: true, MarkdownDescription: description,
		PlanModifiers: []planmodifier.Object{objectplanmodifier.UseStateForUnknown()},
		Attributes:    computedAttributes(bootResultFields),
	}
}

// fixesAppliedAttribute lists the changes the fixes made.
func fixesAppliedAttribute(description string) schema.ListNestedAttribute {
	return computedList(description, changeFields)
}

// plannedFixesAttribute lists the changes the fixes will make.
func plannedFixesAttribute(description string) schema.ListNestedAttribute {
	return computedList(description, plannedFixFields)
}

func computedList(description string, fs []field) schema.ListNestedAttribute {
	return schema.ListNestedAttribute{
		Computed: true, MarkdownDescription: description,
		PlanModifiers: []planmodifier.List{listplanmodifier.UseStateForUnknown()},
		NestedObject:  schema.NestedAttributeObject{Attributes: computedAttributes(fs)},
	}
}

func strList(xs []string) types.List {
	vals := make([]attr.Value, len(xs))
	for i, x := range xs {
		vals[i] = types.StringValue(x)
	}
	return types.ListValueMust(types.StringType, vals)
}

// guestValue renders an inspection result. A nil guest (not inspected) is
// null.
func guestValue(g *engine.GuestInfo) types.Object {
	if g == nil {
		return types.ObjectNull(guestAttrTypes)
	}
	var kernels, fss []string
	for _, k := range g.Kernels {
		kernels = append(kernels, k.Version)
	}
	for _, f := range g.Filesystems {
		s := f.Device + " " + f.Type
		if f.Mountpoint != "" {
			s += " " + f.Mountpoint
		}
		fss = append(fss, s)
	}
	return types.ObjectValueMust(guestAttrTypes, map[string]attr.Value{
		"os": types.StringValue(g.OS), "distro": types.StringValue(g.Distro), "version": types.StringValue(g.Version),
		"product_name": types.StringValue(g.ProductName), "arch": types.StringValue(g.Arch), "hostname": types.StringValue(g.Hostname),
		"root": types.StringValue(g.Root), "firmware": types.StringValue(g.Firmware), "bootloader": types.StringValue(g.Bootloader),
		"initramfs_tool": types.StringValue(g.InitramfsTool), "network_stacks": strList(g.NetworkStacks),
		"hypervisor_tools": strList(g.HypervisorTools), "kernels": strList(kernels), "filesystems": strList(fss),
		"lvm": strList(g.LVM), "selinux": types.StringValue(g.SELinux),
	})
}

// bootResultValue renders a boot test's result; nil (no boot test) is null.
func bootResultValue(r *engine.BootResult) types.Object {
	if r == nil {
		return types.ObjectNull(bootResultAttrTypes)
	}
	return types.ObjectValueMust(bootResultAttrTypes, map[string]attr.Value{
		"status": types.StringValue(r.Status), "reason": types.StringValue(r.Reason), "detail": types.StringValue(r.Detail),
		"duration_seconds": types.Float64Value(float64(r.DurationMS) / 1000), "console_log": types.StringValue(r.ConsoleLog),
		"ip_addresses": strList(r.IPAddresses), "accel": types.StringValue(r.Accel), "disk_bus": types.StringValue(r.DiskBus),
		"nic_model": types.StringValue(r.NICModel), "firmware": types.StringValue(r.Firmware),
	})
}

// changesValue renders the changes a FIX stage made (or, in a dry run,
// would make); no FIX stage is an empty list.
func changesValue(r *engine.FixResult) types.List {
	elem := types.ObjectType{AttrTypes: changeAttrTypes}
	if r == nil {
		return types.ListValueMust(elem, []attr.Value{})
	}
	vals := make([]attr.Value, 0, len(r.Changes))
	for _, c := range r.Changes {
		vals = append(vals, types.ObjectValueMust(changeAttrTypes, map[string]attr.Value{
			"fix": types.StringValue(c.Fix), "action": types.StringValue(c.Action), "path": types.StringValue(c.Path),
			"command": types.StringValue(c.Command), "reason": types.StringValue(c.Reason),
			"before_sha256": types.StringValue(c.BeforeSHA256), "after_sha256": types.StringValue(c.AfterSHA256),
		}))
	}
	return types.ListValueMust(elem, vals)
}

// plannedFixesValue renders the changes the plan's dry run found.
func plannedFixesValue(cs []engine.GuestChange) types.List {
	elem := types.ObjectType{AttrTypes: plannedFixAttrTypes}
	vals := make([]attr.Value, 0, len(cs))
	for _, c := range cs {
		vals = append(vals, types.ObjectValueMust(plannedFixAttrTypes, map[string]attr.Value{
			"fix": types.StringValue(c.Fix), "action": types.StringValue(c.Action), "path": types.StringValue(c.Path),
			"command": types.StringValue(c.Command), "reason": types.StringValue(c.Reason),
		}))
	}
	return types.ListValueMust(elem, vals)
}

// The guest settings both conversions take (fixes, inspect, boot_test)
// share their schema (fixesAttribute, inspectAttribute,
// bootTestAttribute), their models and their mapping to and from the
// engine's request, here.

// guestWorkSpec is the engine's part of a request that the fixes, inspect
// and boot_test attributes set; nil models leave theirs off.
func guestWorkSpec(ctx context.Context, f *fixesModel, i *inspectModel, b *bootTestModel, diags *diag.Diagnostics) (engine.FixSpec, engine.InspectSpec, engine.BootTestSpec) {
	var fs engine.FixSpec
	var is engine.InspectSpec
	var bs engine.BootTestSpec
	f, b = effectiveFixes(f), effectiveBootTest(b)
	{
		fs.Enabled = f.Enabled.ValueBool()
		fs.DryRun = f.DryRun.ValueBool()
		fs.Disabled = setToStrings(ctx, f.Disabled, diags)
		fs.FstabMode = f.FstabMode.ValueString()
		fs.KeepNetworkIdentity = f.KeepNetworkIdentity.ValueBool()
		fs.KeepVMwareTools = f.KeepVMwareTools.ValueBool()
		if f.Windows != nil {
			fs.VirtioWin = f.Windows.VirtioWin.ValueString()
		}
	}
	if i != nil {
		is.Root = i.Root.ValueString()
	}
	bs.Enabled = b.Enabled.ValueBool()
	bs.Options = bootOptions(b)
	return fs, is, bs
}

// guestWorkFromSpec rebuilds the fixes, inspect and boot_test attributes
// from the request a report records (terraform import), with the schema's
// defaults where the request left a setting empty.
func guestWorkFromSpec(req engine.Request) (*fixesModel, *inspectModel, *bootTestModel) {
	f := &fixesModel{
		Enabled: types.BoolValue(req.Fixes.Enabled), DryRun: types.BoolValue(req.Fixes.DryRun),
		Disabled: setOf(req.Fixes.Disabled), FstabMode: types.StringValue(orDefault(req.Fixes.FstabMode, engine.DefaultFstabMode)),
		KeepNetworkIdentity: types.BoolValue(req.Fixes.KeepNetworkIdentity), KeepVMwareTools: types.BoolValue(req.Fixes.KeepVMwareTools),
	}
	if req.Fixes.VirtioWin != "" {
		f.Windows = &windowsFixes{VirtioWin: types.StringValue(req.Fixes.VirtioWin)}
	}
	var i *inspectModel
	if req.Inspect.Root != "" {
		i = &inspectModel{Root: types.StringValue(req.Inspect.Root)}
	}
	b := req.BootTest
	bt := &bootTestModel{
		Enabled: types.BoolValue(b.Enabled), Timeout: nullIfEmpty(durationString(b.Timeout)),
		Memory: types.Int64Value(int64(orInt(b.MemoryMiB, defaultBootMemory))), CPUs: types.Int64Value(int64(orInt(b.CPUs, defaultBootCPUs))),
		SuccessPattern: nullIfEmpty(b.SuccessPattern), DiskBus: types.StringValue(orDefault(b.DiskBus, bootDiskBuses[0])),
		NICModel: types.StringValue(orDefault(b.NICModel, bootNICModels[0])), MAC: nullIfEmpty(b.MAC),
		RequireNetwork: types.BoolValue(b.RequireNetwork), FirmwareBootEntry: nullIfEmpty(b.FirmwareBootEntry),
	}
	// Only what differs from the defaults, as a configuration that writes
	// no default out has it.
	return minimal(f, fixesAttrTypes, defaultFixes()), i, minimal(bt, bootTestAttrTypes, defaultBootTest())
}

// nullTimeouts is an imported resource's timeouts: none set.
func nullTimeouts() timeouts.Value {
	return timeouts.Value{Object: types.ObjectNull(map[string]attr.Type{
		"create": types.StringType, "read": types.StringType, "update": types.StringType, "delete": types.StringType,
	})}
}
