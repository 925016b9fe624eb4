package provider

import (
	"context"
	"strings"
	"sync"

	"github.com/hashicorp/terraform-plugin-framework-validators/objectvalidator"
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
	"github.com/hashicorp/terraform-plugin-framework/types/basetypes"

	"github.com/vmconv/terraform-provider-vmconv/engine"
	"github.com/vmconv/terraform-provider-vmconv/internal/provider/validators"
)

// sourceKind is one way of naming the disk to convert: one attribute or
// block under source, and its part of the engine's source spec. The
// resource only ever loops over sourceKinds, so a new kind is one file here
// (source_<kind>.go) beside its engine/source file and its field in
// engine.SourceSpec.
//
// A kind with settings is a block, not a nested attribute, so that
// Terraform rejects a misspelt setting instead of dropping it
// (hashicorp/terraform#33570); a kind that is one string is an attribute.
//
// A kind does not say whether its inputs are known: every value of the kind
// in the configuration must be (sourceKnown), write-only ones included.
type sourceKind interface {
	// name is the kind's attribute or block under source.
	name() string
	// schema is the kind's attribute (a string) or block. Neither may be
	// required, since only one kind is set, as the source block checks.
	schema() kindSchema
	// spec fills the kind's part of s from its planned value v (set and
	// known). Write-only values are not in the plan: a kind reads them from
	// in.config, and provider settings such as credentials from in.data.
	spec(ctx context.Context, v attr.Value, in specInputs, s *engine.SourceSpec, diags *diag.Diagnostics)
	// fromSpec rebuilds the kind's value from the request a report records
	// (terraform import); ok is false when the request names another kind.
	// A report holds no secrets: write-only values are left null.
	fromSpec(ctx context.Context, s engine.SourceSpec, diags *diag.Diagnostics) (v attr.Value, ok bool)
}

// kindSchema is a kind's schema: an attribute, or a block.
type kindSchema struct {
	attr  schema.Attribute
	block schema.Block
}

func (k kindSchema) typ() attr.Type {
	if k.block != nil {
		return k.block.Type()
	}
	return k.attr.GetType()
}

// sourceKinds are the kinds, in the order the docs list them.
var sourceKinds = []sourceKind{pathKind{}, ovaKind{}, urlKind{}, vsphereKind{}, esxiKind{}}

// specInputs is what a kind may read besides its planned value.
type specInputs struct {
	config tfsdk.Config
	// at is the kind's attribute path, source.<name>.
	at   path.Path
	data *providerData
}

// sourceBlock is the schema of source: every kind, and the settings every
// kind shares.
func sourceBlock(description string) schema.SingleNestedBlock {
	attrs := map[string]schema.Attribute{
		"format": schema.StringAttribute{
			Optional: true,
			MarkdownDescription: "Declares the source format instead of detecting it, for raw disks that start with no recognisable partition table or file system. " +
				"It must not contradict the content. One of " + backticked(engine.InputFormats()) + ".",
			Validators:    []validator.String{stringvalidator.OneOf(engine.InputFormats()...)},
			PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()},
		},
		"allow_parent_cid_mismatch": schema.BoolAttribute{
			Optional: true, Computed: true, Default: booldefault.StaticBool(false),
			MarkdownDescription: "Convert a snapshot chain even where a snapshot's `parentCID` does not match its parent's `CID` " +
				"(the parent was changed after the snapshot was taken). Off by default, because the result may be inconsistent.",
		},
		"allow_older_snapshot": schema.BoolAttribute{
			Optional: true, Computed: true, Default: booldefault.StaticBool(false),
			MarkdownDescription: "Convert a local disk file that has a newer snapshot of it in the same folder. Off by default: the plan refuses such a source, " +
				"naming the newer snapshot, because the output would silently lack that snapshot's writes. Set it to convert the disk as it was when the snapshot was taken.",
		},
	}
	return kindsBlock(description, attrs, sourceKinds)
}

// kindsBlock is a source block: the shared settings attrs, one attribute
// or block per kind, and the check that exactly one kind is set.
func kindsBlock(description string, attrs map[string]schema.Attribute, kinds []sourceKind) schema.SingleNestedBlock {
	blocks := map[string]schema.Block{}
	for _, k := range kinds {
		ks := k.schema()
		if ks.block != nil {
			blocks[k.name()] = requiredInBlock(ks.block)
		} else {
			attrs[k.name()] = ks.attr
		}
	}
	return schema.SingleNestedBlock{
		MarkdownDescription: description,
		Attributes:          attrs,
		Blocks:              blocks,
		Validators:          []validator.Object{objectvalidator.IsRequired(), validators.ExactlyOneOf(kindNamesOf(kinds)...)},
	}
}

func kindNamesOf(kinds []sourceKind) []string {
	names := make([]string, len(kinds))
	for i, k := range kinds {
		names[i] = k.name()
	}
	return names
}

// sourceAttrTypes are the attribute types under source.
var sourceAttrTypes = sync.OnceValue(func() map[string]attr.Type { return blockTypes(sourceBlock("")) })

// blockTypes are the types of a block's attributes and nested blocks.
func blockTypes(b schema.SingleNestedBlock) map[string]attr.Type {
	t, _ := b.Type().(basetypes.ObjectType)
	return t.AttrTypes
}

// kindNames lists the kinds for descriptions: "`path`, `ova` ... and `x`".
func kindNames() string {
	list := backticked(kindNamesOf(sourceKinds))
	if i := strings.LastIndex(list, ", "); i >= 0 {
		list = list[:i] + " and " + list[i+2:]
	}
	return list
}

// sourceSpec builds the engine's source spec from the planned source.
func sourceSpec(ctx context.Context, src types.Object, cfg tfsdk.Config, data *providerData, diags *diag.Diagnostics) engine.SourceSpec {
	return sourceSpecAt(ctx, src, path.Root("source"), cfg, data, diags)
}

// sourceSpecAt builds a disk's source spec from its planned value, which
// lies at at in the configuration (source, or an element of a VM's
// source.disks).
func sourceSpecAt(ctx context.Context, src types.Object, at path.Path, cfg tfsdk.Config, data *providerData, diags *diag.Diagnostics) engine.SourceSpec {
	attrs := src.Attributes()
	s := engine.SourceSpec{
		Format:                 stringOf(attrs["format"]),
		AllowParentCIDMismatch: boolOf(attrs["allow_parent_cid_mismatch"]),
		AllowOlderSnapshot:     boolOf(attrs["allow_older_snapshot"]),
	}
	for _, k := range sourceKinds {
		if v := attrs[k.name()]; v != nil && !v.IsNull() && !v.IsUnknown() {
			k.spec(ctx, v, specInputs{config: cfg, at: at.AtName(k.name()), data: data}, &s, diags)
		}
	}
	return s
}

// sourceFromSpec rebuilds the source from a report's request.
func sourceFromSpec(ctx context.Context, s engine.SourceSpec, diags *diag.Diagnostics) types.Object {
	ts := sourceAttrTypes()
	vals := map[string]attr.Value{
		"format":                    nullIfEmpty(s.Format),
		"allow_parent_cid_mismatch": types.BoolValue(s.AllowParentCIDMismatch),
		"allow_older_snapshot":      types.BoolValue(s.AllowOlderSnapshot),
	}
	for _, k := range sourceKinds {
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

// sourceKnown reports whether every value of the configured source is
// known, write-only ones included (the plan holds those as null).
func sourceKnown(ctx context.Context, cfg tfsdk.Config) bool {
	var src types.Object
	if d := cfg.GetAttribute(ctx, path.Root("source"), &src); d.HasError() {
		return false
	}
	return !src.IsNull() && fullyKnown(src)
}

// kindValue converts a kind's planned object into its model.
func kindValue(ctx context.Context, v attr.Value, model any, diags *diag.Diagnostics) {
	if o, ok := v.(basetypes.ObjectValue); ok {
		diags.Append(o.As(ctx, model, basetypes.ObjectAsOptions{})...)
	}
}

// kindObject is a kind's model as its object value.
func kindObject(ctx context.Context, k sourceKind, model any, diags *diag.Diagnostics) attr.Value {
	t, _ := k.schema().typ().(basetypes.ObjectType)
	v, d := types.ObjectValueFrom(ctx, t.AttrTypes, model)
	diags.Append(d...)
	return v
}

// configString reads a write-only string from the configuration.
func configString(ctx context.Context, cfg tfsdk.Config, at path.Path, diags *diag.Diagnostics) string {
	var v types.String
	diags.Append(cfg.GetAttribute(ctx, at, &v)...)
	return v.ValueString()
}

func stringOf(v attr.Value) string {
	s, _ := v.(basetypes.StringValue)
	return s.ValueString()
}

func boolOf(v attr.Value) bool {
	b, _ := v.(basetypes.BoolValue)
	return b.ValueBool()
}
