package provider

import (
	"context"
	"reflect"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/vmconv/terraform-provider-vmconv/engine"
)

// A fixes block left out, an empty one, and one that writes its defaults
// out mean the same fixes; a changed setting does not.
func TestEffectiveFixes(t *testing.T) {
	nulls := map[string]attr.Value{
		"enabled": types.BoolNull(), "dry_run": types.BoolNull(), "disabled": types.SetNull(types.StringType),
		"fstab_mode": types.StringNull(), "keep_network_identity": types.BoolNull(), "keep_vmware_tools": types.BoolNull(),
		"windows": types.ObjectNull(windowsFixesAttrTypes),
	}
	with := func(changes map[string]attr.Value) types.Object {
		attrs := map[string]attr.Value{}
		for k, v := range nulls {
			attrs[k] = v
		}
		for k, v := range changes {
			attrs[k] = v
		}
		return types.ObjectValueMust(fixesAttrTypes, attrs)
	}
	emptyWindows := types.ObjectValueMust(windowsFixesAttrTypes, map[string]attr.Value{"virtio_win": types.StringNull()})
	left := effectiveFixesObject(types.ObjectNull(fixesAttrTypes))
	for name, o := range map[string]types.Object{
		"empty block":      with(nil),
		"defaults written": defaultFixes(),
		"enabled = true":   with(map[string]attr.Value{"enabled": types.BoolValue(true)}),
		"empty windows {}": with(map[string]attr.Value{"windows": emptyWindows}),
		"disabled = []":    with(map[string]attr.Value{"disabled": setOf(nil)}),
	} {
		if got := effectiveFixesObject(o); !got.Equal(left) {
			t.Errorf("%s: %v, want the defaults %v", name, got, left)
		}
	}
	for name, o := range map[string]types.Object{
		"enabled = false":    with(map[string]attr.Value{"enabled": types.BoolValue(false)}),
		"disabled = [fstab]": with(map[string]attr.Value{"disabled": setOf([]string{"fstab"})}),
		"fstab_mode = none":  with(map[string]attr.Value{"fstab_mode": types.StringValue("none")}),
		// Not known until apply: it may be anything, so it is not the
		// defaults (and replaces).
		"disabled unknown": with(map[string]attr.Value{"disabled": types.SetUnknown(types.StringType)}),
	} {
		if effectiveFixesObject(o).Equal(left) {
			t.Errorf("%s means the defaults", name)
		}
	}
}

// What import rebuilds from a report is what a configuration that writes
// no default out has, and it asks the engine for the same work.
func TestGuestWorkFromSpecMinimal(t *testing.T) {
	ctx := context.Background()
	var diags diag.Diagnostics
	fs, is, bs := guestWorkSpec(ctx, nil, nil, nil, &diags)
	if diags.HasError() {
		t.Fatal(diags)
	}
	var req engine.Request
	req.Fixes, req.Inspect, req.BootTest = fs, is, bs
	if f, i, b := guestWorkFromSpec(req); f != nil || i != nil || b != nil {
		t.Errorf("the defaults import as blocks: %+v %+v %+v", f, i, b)
	}
	req.Fixes.DryRun, req.BootTest.Options.MemoryMiB = true, 2048
	f, _, b := guestWorkFromSpec(req)
	if f == nil || !f.DryRun.ValueBool() || !f.Enabled.IsNull() || !f.FstabMode.IsNull() {
		t.Errorf("fixes: %+v, want dry_run alone", f)
	}
	if b == nil || b.Memory.ValueInt64() != 2048 || !b.Enabled.IsNull() || !b.DiskBus.IsNull() {
		t.Errorf("boot_test: %+v, want memory alone", b)
	}
	// Round trip: the minimal blocks ask for what the report recorded.
	fs2, _, bs2 := guestWorkSpec(ctx, f, nil, b, &diags)
	if !reflect.DeepEqual(fs2, req.Fixes) || !reflect.DeepEqual(bs2, req.BootTest) {
		t.Errorf("round trip:\n%+v\n%+v\nwant\n%+v\n%+v", fs2, bs2, req.Fixes, req.BootTest)
	}
	if !b.equal(&bootTestModel{Memory: types.Int64Value(2048), Enabled: types.BoolValue(true)}) || b.equal(nil) {
		t.Error("boot_test blocks compare by what they mean")
	}
}
