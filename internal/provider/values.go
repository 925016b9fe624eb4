package provider

import (
	"context"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-framework/types/basetypes"
	"github.com/hashicorp/terraform-plugin-go/tftypes"
)

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

func setOf(xs []string) types.Set {
	vals := make([]attr.Value, len(xs))
	for i, x := range xs {
		vals[i] = types.StringValue(x)
	}
	return types.SetValueMust(types.StringType, vals)
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func orInt(v, d int) int {
	if v == 0 {
		return d
	}
	return v
}

func nullIfEmpty(s string) types.String {
	if s == "" {
		return types.StringNull()
	}
	return types.StringValue(s)
}

func durationString(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return d.String()
}

// fullyKnown reports whether a value and everything inside it is known.
func fullyKnown(v attr.Value) bool {
	if v == nil || v.IsNull() {
		return true
	}
	if v.IsUnknown() {
		return false
	}
	var elems []attr.Value
	switch x := v.(type) {
	case basetypes.ObjectValue:
		for _, e := range x.Attributes() {
			elems = append(elems, e)
		}
	case basetypes.MapValue:
		for _, e := range x.Elements() {
			elems = append(elems, e)
		}
	case basetypes.ListValue:
		elems = x.Elements()
	case basetypes.SetValue:
		elems = x.Elements()
	}
	for _, e := range elems {
		if !fullyKnown(e) {
			return false
		}
	}
	return true
}

// nullOf is the null value of a type.
func nullOf(ctx context.Context, t attr.Type) attr.Value {
	v, err := t.ValueFromTerraform(ctx, tftypes.NewValue(t.TerraformType(ctx), nil))
	if err != nil {
		panic(err) // every framework type has a null value
	}
	return v
}
