package provider

import (
	"context"

	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/objectplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/vmconv/terraform-provider-vmconv/engine"
)

// urlKind is a disk file on an HTTP(S) server.
type urlKind struct{}

type urlModel struct {
	Href    types.String `tfsdk:"href"`
	SHA256  types.String `tfsdk:"sha256"`
	Headers types.Map    `tfsdk:"headers"`
}

func (urlKind) name() string { return "url" }

func (urlKind) schema() kindSchema {
	return kindSchema{block: schema.SingleNestedBlock{
		MarkdownDescription: "A disk file on an HTTP(S) server, downloaded with retries and Range resume into the cache folder (a repeated apply after an interruption continues " +
			"the download, and reuses a finished, verified one). Plans use the server's metadata (HEAD) unless the provider's `plan_fetch` is true or the file is already " +
			"downloaded; format, chain and sizes are then known after apply. The URL is shown redacted (no user info or query) in logs, plans and reports.",
		PlanModifiers: []planmodifier.Object{objectplanmodifier.RequiresReplace()},
		Attributes: map[string]schema.Attribute{
			"href": schema.StringAttribute{Required: true, MarkdownDescription: "The `http://` or `https://` URL. Put credentials in `headers`, not in the URL.",
				Validators: []validator.String{stringvalidator.RegexMatches(httpURL, "must be an http:// or https:// URL")}},
			"sha256": schema.StringAttribute{Optional: true, MarkdownDescription: "The file's expected SHA-256 (hex). The download is refused when it differs.",
				Validators: []validator.String{stringvalidator.RegexMatches(sha256Hex, "must be 64 hexadecimal digits")}},
			"headers": schema.MapAttribute{Optional: true, Sensitive: true, WriteOnly: true, ElementType: types.StringType,
				MarkdownDescription: "Request headers, such as `Authorization`. Write-only (Terraform 1.11+): never stored in the plan or state, never logged, " +
					"never written to the plan file or report. Changing them does not replace the output."},
		},
	}}
}

// spec takes the headers from the configuration: they are write-only, so
// the plan and state never hold them.
func (urlKind) spec(ctx context.Context, v attr.Value, in specInputs, s *engine.SourceSpec, diags *diag.Diagnostics) {
	var m urlModel
	kindValue(ctx, v, &m, diags)
	s.URL = &engine.URLSpec{Href: m.Href.ValueString(), SHA256: m.SHA256.ValueString(), Headers: configHeaders(ctx, in, diags)}
}

// configHeaders reads a kind's write-only headers from the configuration,
// the only place they are.
func configHeaders(ctx context.Context, in specInputs, diags *diag.Diagnostics) map[string]string {
	out := map[string]string{}
	var h types.Map
	diags.Append(in.config.GetAttribute(ctx, in.at.AtName("headers"), &h)...)
	for k, v := range h.Elements() {
		if sv, ok := v.(types.String); ok {
			out[k] = sv.ValueString()
		}
	}
	return out
}

// fromSpec shows the URL redacted: the report holds no other form of it,
// and no headers.
func (k urlKind) fromSpec(ctx context.Context, s engine.SourceSpec, diags *diag.Diagnostics) (attr.Value, bool) {
	if s.URL == nil {
		return nil, false
	}
	m := urlModel{Href: types.StringValue(s.URL.Shown), SHA256: nullIfEmpty(s.URL.SHA256), Headers: types.MapNull(types.StringType)}
	return kindObject(ctx, k, m, diags), true
}
