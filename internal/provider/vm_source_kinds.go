package provider

import (
	"context"
	"fmt"
	"maps"

	"github.com/hashicorp/terraform-plugin-framework-validators/listvalidator"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/listplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-framework/types/basetypes"

	"github.com/vmconv/terraform-provider-vmconv/engine"
)

// wholeVM is a disk source kind that names a whole VM: the same
// attribute, without the one that picks a disk (drop), converting every
// disk of the VM. The engine learns which from output.dir.
type wholeVM struct {
	sourceKind
	drop string
	doc  string
}

func (w wholeVM) schema() kindSchema {
	b, ok := w.sourceKind.schema().block.(schema.SingleNestedBlock)
	if !ok {
		panic("a whole-VM kind wraps a block")
	}
	b.Attributes = maps.Clone(b.Attributes)
	delete(b.Attributes, w.drop)
	b.MarkdownDescription = w.doc
	return kindSchema{block: b}
}

// spec gives the disk kind its value with the dropped attribute at its
// zero, which the engine ignores for a whole VM.
func (w wholeVM) spec(ctx context.Context, v attr.Value, in specInputs, s *engine.SourceSpec, diags *diag.Diagnostics) {
	if w.drop != "" {
		o, ok := v.(basetypes.ObjectValue)
		if !ok {
			return
		}
		full, _ := w.sourceKind.schema().typ().(basetypes.ObjectType)
		attrs := maps.Clone(o.Attributes())
		attrs[w.drop] = types.Int64Value(0)
		nv, d := types.ObjectValue(full.AttrTypes, attrs)
		if diags.Append(d...); d.HasError() {
			return
		}
		v = nv
	}
	w.sourceKind.spec(ctx, v, in, s, diags)
}

func (w wholeVM) fromSpec(ctx context.Context, s engine.SourceSpec, diags *diag.Diagnostics) (attr.Value, bool) {
	v, ok := w.sourceKind.fromSpec(ctx, s, diags)
	if !ok || w.drop == "" {
		return v, ok
	}
	o, _ := v.(basetypes.ObjectValue)
	attrs := maps.Clone(o.Attributes())
	delete(attrs, w.drop)
	t, _ := w.schema().typ().(basetypes.ObjectType)
	nv, d := types.ObjectValue(t.AttrTypes, attrs)
	diags.Append(d...)
	return nv, true
}

// disksKind is a VM given as a list of single-disk sources, in the order
// the VM attaches them.
type disksKind struct{}

func (disksKind) name() string { return "disks" }

func (disksKind) schema() kindSchema {
	src := sourceBlock("")
	return kindSchema{block: schema.ListNestedBlock{
		MarkdownDescription: fmt.Sprintf("The VM's disks one by one, one block each, in the order the VM attaches them (the first is the boot disk, `sda`): each exactly as "+
			"`vmconv_disk_conversion`'s `source` (one of %s), fetched and checked as it would be alone. They are converted as one guest on consecutive SCSI units. "+
			"At most %d. `hardware` is unknown to vmconv for a list, so it is null.", kindNames(), engine.MaxListedDisks),
		NestedObject:  schema.NestedBlockObject{Attributes: src.Attributes, Blocks: src.Blocks, Validators: src.Validators[1:]},
		Validators:    []validator.List{listvalidator.SizeAtMost(engine.MaxListedDisks)},
		PlanModifiers: []planmodifier.List{listplanmodifier.RequiresReplace()},
	}}
}
func (disksKind) spec(ctx context.Context, v attr.Value, in specInputs, s *engine.SourceSpec, diags *diag.Diagnostics) {
	l, ok := v.(basetypes.ListValue)
	if !ok {
		return
	}
	for i, e := range l.Elements() {
		o, ok := e.(basetypes.ObjectValue)
		if !ok || o.IsNull() || o.IsUnknown() {
			// Skipping it would move every later disk up one slot.
			diags.AddAttributeError(in.at.AtListIndex(i), "Invalid Listed Disk",
				fmt.Sprintf("source.disks[%d] is null or not known: every listed disk must name its source, since its position is the slot the guest knows it by.", i))
			return
		}
		s.Disks = append(s.Disks, sourceSpecAt(ctx, o, in.at.AtListIndex(i), in.config, in.data, diags))
	}
}

func (disksKind) fromSpec(ctx context.Context, s engine.SourceSpec, diags *diag.Diagnostics) (attr.Value, bool) {
	if len(s.Disks) == 0 {
		return nil, false
	}
	t := types.ObjectType{AttrTypes: sourceAttrTypes()}
	var elems []attr.Value
	for _, d := range s.Disks {
		elems = append(elems, sourceFromSpec(ctx, d, diags))
	}
	l, d := types.ListValue(t, elems)
	diags.Append(d...)
	return l, true
}
