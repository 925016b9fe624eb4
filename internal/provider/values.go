package provider

import (
	"context"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-framework/types/basetypes"

	"github.com/vmconv/terraform-provider-vmconv/engine/fix"
	"github.com/vmconv/terraform-provider-vmconv/engine/guest"
	"github.com/vmconv/terraform-provider-vmconv/engine/validate"
)

// Attribute types of the computed nested objects, shared by resources and
// data sources.
var (
	stringList = types.ListType{ElemType: types.StringType}

	guestAttrTypes = map[string]attr.Type{
		"os": types.StringType, "distro": types.StringType, "version": types.StringType, "product_name": types.StringType,
		"arch": types.StringType, "hostname": types.StringType, "root": types.StringType, "firmware": types.StringType,
		"bootloader": types.StringType, "initramfs_tool": types.StringType, "network_stacks": stringList,
		"hypervisor_tools": stringList, "kernels": stringList, "filesystems": stringList, "lvm": stringList, "selinux": types.StringType,
	}

	changeAttrTypes = map[string]attr.Type{
		"fix": types.StringType, "action": types.StringType, "path": types.StringType, "command": types.StringType,
		"reason": types.StringType, "before_sha256": types.StringType, "after_sha256": types.StringType,
	}

	bootResultAttrTypes = map[string]attr.Type{
		"status": types.StringType, "reason": types.StringType, "detail": types.StringType,
		"duration_seconds": types.Float64Type, "console_log": types.StringType, "ip_addresses": stringList,
		"accel": types.StringType, "disk_bus": types.StringType, "nic_model": types.StringType, "firmware": types.StringType,
	}
)

func strList(xs []string) types.List {
	vals := make([]attr.Value, len(xs))
	for i, x := range xs {
		vals[i] = types.StringValue(x)
	}
	return types.ListValueMust(types.StringType, vals)
}

// guestValue renders an inspection result. A nil guest (not inspected) is
// null.
func guestValue(g *guest.Info) types.Object {
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

func changesValue(r *fix.Result) types.List {
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

func bootResultValue(r *validate.Result) types.Object {
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

// setToStrings reads a set of strings.
func setToStrings(ctx context.Context, s types.Set, diags *diag.Diagnostics) []string {
	if s.IsNull() || s.IsUnknown() {
		return nil
	}
	var out []string
	diags.Append(s.ElementsAs(ctx, &out, false)...)
	return out
}

// objectAsOptions lets nested objects with unknown parts convert.
var objectAsOptions = basetypes.ObjectAsOptions{UnhandledNullAsEmpty: true, UnhandledUnknownAsEmpty: true}
