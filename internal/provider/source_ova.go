package provider

import (
	"context"
	"regexp"

	"github.com/hashicorp/terraform-plugin-framework-validators/int64validator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64default"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/objectplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/vmconv/terraform-provider-vmconv/engine"
	"github.com/vmconv/terraform-provider-vmconv/internal/provider/validators"
)

// ovaKind is one disk of an OVA archive, local or on an HTTP(S) server.
type ovaKind struct{}

type ovaModel struct {
	Path   types.String `tfsdk:"path"`
	URL    types.String `tfsdk:"url"`
	SHA256 types.String `tfsdk:"sha256"`
	// Headers are write-only: always null in plans and state.
	Headers types.Map   `tfsdk:"headers"`
	Disk    types.Int64 `tfsdk:"disk"`
}

var (
	httpURL   = regexp.MustCompile(`^https?://`)
	sha256Hex = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)
)

func (ovaKind) name() string { return "ova" }

func (ovaKind) schema() kindSchema {
	return kindSchema{block: schema.SingleNestedBlock{
		MarkdownDescription: "A local OVA archive. It is read as a stream, once: the OVF descriptor is parsed (CPUs, memory, firmware, NICs, in the plan's JSON), " +
			"the manifest checked, and the chosen disk extracted into the cache folder, keyed by the archive's fingerprint, where later plans and applies reuse it. " +
			"Archives with absolute or `../` member names, links, duplicates, missing disks or a manifest mismatch are refused.",
		PlanModifiers: []planmodifier.Object{objectplanmodifier.RequiresReplace()},
		Validators:    []validator.Object{validators.ExactlyOneOf("path", "url")},
		Attributes: map[string]schema.Attribute{
			"path": schema.StringAttribute{Optional: true, MarkdownDescription: "Path of the `.ova` file. Exactly one of `path` and `url`.",
				Validators: []validator.String{stringvalidator.LengthAtLeast(1)}},
			"url": schema.StringAttribute{Optional: true,
				MarkdownDescription: "An `http://` or `https://` URL of the OVA: downloaded resumably into the cache (planned from the server's metadata unless `plan_fetch`), then extracted like a local one.",
				Validators:          []validator.String{stringvalidator.RegexMatches(httpURL, "must be an http:// or https:// URL")}},
			"sha256": schema.StringAttribute{Optional: true, MarkdownDescription: "With `url`: the OVA's expected SHA-256.",
				Validators: []validator.String{stringvalidator.RegexMatches(sha256Hex, "must be 64 hexadecimal digits")}},
			"headers": schema.MapAttribute{Optional: true, Sensitive: true, WriteOnly: true, ElementType: types.StringType,
				MarkdownDescription: "With `url`: request headers, such as `Authorization`, so that credentials need not be in the URL (which is kept, redacted, in state). " +
					"Write-only (Terraform 1.11+, OpenTofu 1.11+): never stored in the plan or state, never logged, never written to the plan file or report. " +
					"Changing them does not replace the output."},
			"disk": schema.Int64Attribute{Optional: true, Computed: true, Default: int64default.StaticInt64(0),
				MarkdownDescription: "Which of the OVF's disks, in its order, from 0. Default 0.",
				Validators:          []validator.Int64{int64validator.AtLeast(0)}},
		},
	}}
}

func (ovaKind) spec(ctx context.Context, v attr.Value, in specInputs, s *engine.SourceSpec, diags *diag.Diagnostics) {
	var m ovaModel
	kindValue(ctx, v, &m, diags)
	s.OVA, s.OVADisk = m.Path.ValueString(), int(m.Disk.ValueInt64())
	if m.URL.ValueString() != "" {
		s.OVAURL = &engine.URLSpec{Href: m.URL.ValueString(), SHA256: m.SHA256.ValueString(), Headers: configHeaders(ctx, in, diags)}
	}
}

// fromSpec shows an OVA URL redacted, as the report holds it.
func (k ovaKind) fromSpec(ctx context.Context, s engine.SourceSpec, diags *diag.Diagnostics) (attr.Value, bool) {
	m := ovaModel{Path: types.StringNull(), URL: types.StringNull(), SHA256: types.StringNull(), Headers: types.MapNull(types.StringType), Disk: types.Int64Value(int64(s.OVADisk))}
	switch {
	case s.OVA != "":
		m.Path = types.StringValue(s.OVA)
	case s.OVAURL != nil:
		m.URL, m.SHA256 = types.StringValue(s.OVAURL.Shown), nullIfEmpty(s.OVAURL.SHA256)
	default:
		return nil, false
	}
	return kindObject(ctx, k, m, diags), true
}
