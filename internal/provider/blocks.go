package provider

import (
	"context"
	"maps"
	"slices"
	"sort"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/objectplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-framework/types/basetypes"

	"github.com/vmconv/terraform-provider-vmconv/internal/provider/validators"
)

// Settings are blocks (see sourceKind), and a block left out is null, where
// a nested attribute had its defaults. So "no fixes block", "fixes {}" and
// a block that writes every default out all mean the same thing, and what
// decides an output's replacement is the settings they mean, not how the
// configuration spells them.

// replaceIfEffective replaces the resource when a block's effective value,
// as effective computes it, changes.
func replaceIfEffective(effective func(types.Object) attr.Value, what string) planmodifier.Object {
	desc := "Changing " + what + " replaces the output; writing their defaults out, or leaving them out, does not."
	return objectplanmodifier.RequiresReplaceIf(func(_ context.Context, req planmodifier.ObjectRequest, resp *objectplanmodifier.RequiresReplaceIfFuncResponse) {
		resp.RequiresReplace = !effective(req.StateValue).Equal(effective(req.PlanValue))
	}, desc, desc)
}

// effectiveFixesObject is the fixes a fixes block means: each setting it
// leaves out (and the whole block, left out) at its default, and no
// Windows settings for an empty windows block. The schema holds no
// defaults, so that a plan shows what the configuration says and no more.
func effectiveFixesObject(o types.Object) attr.Value {
	if !fullyKnown(o) {
		return o // decided at apply: compared as it is, which replaces
	}
	e := withDefaults(o, defaultFixes())
	if w, ok := e.Attributes()["windows"].(basetypes.ObjectValue); ok && !w.IsNull() && w.Attributes()["virtio_win"].IsNull() {
		attrs := maps.Clone(e.Attributes())
		attrs["windows"] = types.ObjectNull(windowsFixesAttrTypes)
		e = types.ObjectValueMust(fixesAttrTypes, attrs)
	}
	return e
}

// effectiveInspectObject is the root an inspect block names, null for none.
func effectiveInspectObject(o types.Object) attr.Value {
	if o.IsNull() || o.IsUnknown() {
		return o
	}
	if root := o.Attributes()["root"]; root == nil || root.IsNull() {
		return types.ObjectNull(o.AttributeTypes(context.Background()))
	}
	return o
}

// effectiveFixes is effectiveFixesObject on a block's model.
func effectiveFixes(f *fixesModel) *fixesModel {
	return viaObject(f, fixesAttrTypes, func(o types.Object) types.Object {
		e, _ := effectiveFixesObject(o).(types.Object)
		return e
	})
}

// effectiveBootTest is what a boot_test block means, its defaults filled
// in as effectiveFixes's are.
func effectiveBootTest(b *bootTestModel) *bootTestModel {
	return viaObject(b, bootTestAttrTypes, func(o types.Object) types.Object { return withDefaults(o, defaultBootTest()) })
}

// withDefaults is o with each null attribute at its value in defaults:
// defaults itself for a block left out.
func withDefaults(o, defaults types.Object) types.Object {
	if o.IsNull() {
		return defaults
	}
	attrs := maps.Clone(o.Attributes())
	for name, v := range attrs {
		if v.IsNull() {
			attrs[name] = defaults.Attributes()[name]
		}
	}
	return types.ObjectValueMust(o.AttributeTypes(context.Background()), attrs)
}

// minimalObject is o with each attribute equal to its default in defaults
// made null, and null itself when nothing is left: the block a
// configuration that writes no defaults out has (terraform import).
func minimalObject(o, defaults types.Object) types.Object {
	attrs := maps.Clone(o.Attributes())
	set := false
	for name, v := range attrs {
		if v.Equal(defaults.Attributes()[name]) {
			attrs[name] = nullOf(context.Background(), v.Type(context.Background()))
		}
		set = set || !attrs[name].IsNull()
	}
	if !set {
		return types.ObjectNull(o.AttributeTypes(context.Background()))
	}
	return types.ObjectValueMust(o.AttributeTypes(context.Background()), attrs)
}

// absentOf is the value of an attribute or block the configuration leaves
// out: null, but an empty list for a repeated block, as Terraform has it.
func absentOf(ctx context.Context, t attr.Type) attr.Value {
	if l, ok := t.(basetypes.ListType); ok {
		return types.ListValueMust(l.ElemType, []attr.Value{})
	}
	return nullOf(ctx, t)
}

// requiredInBlock makes a single block's required attributes optional and
// has the block require them instead, when it is set (validators.Required).
// Other blocks are returned as they are.
func requiredInBlock(b schema.Block) schema.Block {
	sb, ok := b.(schema.SingleNestedBlock)
	if !ok {
		return b
	}
	attrs := maps.Clone(sb.Attributes)
	var names []string
	for name, a := range attrs {
		switch t := a.(type) {
		case schema.StringAttribute:
			if t.Required {
				t.Required, t.Optional = false, true
				t.MarkdownDescription = "Required in the block. " + t.MarkdownDescription
				attrs[name], names = t, append(names, name)
			}
		case schema.MapAttribute, schema.BoolAttribute, schema.Int64Attribute:
			if a.IsRequired() {
				panic("requiredInBlock: required " + name + " is not a string")
			}
		}
	}
	if len(names) == 0 {
		return b
	}
	sort.Strings(names)
	sb.Attributes = attrs
	sb.Validators = append(slices.Clone(sb.Validators), validators.Required(names...))
	return sb
}

// minimal is a block's model with only what differs from defaults
// (minimalObject); nil when nothing does.
func minimal[T any](v *T, attrTypes map[string]attr.Type, defaults types.Object) *T {
	return viaObject(v, attrTypes, func(o types.Object) types.Object { return minimalObject(o, defaults) })
}

// viaObject applies f to a block's model as its object value (nil is the
// block left out, null) and returns the result as a model, nil for null.
// A model that does not convert is returned as it is.
func viaObject[T any](v *T, attrTypes map[string]attr.Type, f func(types.Object) types.Object) *T {
	ctx := context.Background()
	o := types.ObjectNull(attrTypes)
	if v != nil {
		var d diag.Diagnostics
		if o, d = types.ObjectValueFrom(ctx, attrTypes, v); d.HasError() {
			return v
		}
	}
	r := f(o)
	if r.IsNull() || r.IsUnknown() {
		return nil
	}
	out := new(T)
	if d := r.As(ctx, out, objectAsOptions); d.HasError() {
		return v
	}
	return out
}
