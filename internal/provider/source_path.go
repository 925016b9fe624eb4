package provider

import (
	"context"

	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/vmconv/terraform-provider-vmconv/engine"
)

// pathKind is a local disk, named by its newest file.
type pathKind struct{}

func (pathKind) name() string { return "path" }

// attribute carries the check that exactly one kind is set: a validator on
// an optional attribute runs whether or not it is set.
func (pathKind) schema() kindSchema {
	return kindSchema{attr: schema.StringAttribute{
		Optional: true,
		MarkdownDescription: "Path of the disk's newest file: for a snapshot chain, the newest snapshot's descriptor (for example `web-000002.vmdk`). " +
			"The format is detected from the content, not the name. Every file the chain references must lie in this file's folder. " +
			"Exactly one of " + kindNames() + " is set.",
		Validators:    []validator.String{stringvalidator.LengthAtLeast(1)},
		PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()},
	}}
}

func (pathKind) spec(_ context.Context, v attr.Value, _ specInputs, s *engine.SourceSpec, _ *diag.Diagnostics) {
	s.Path = stringOf(v)
}

func (pathKind) fromSpec(_ context.Context, s engine.SourceSpec, _ *diag.Diagnostics) (attr.Value, bool) {
	if s.Path == "" {
		return nil, false
	}
	return types.StringValue(s.Path), true
}
