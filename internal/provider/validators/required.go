package validators

import (
	"context"
	"fmt"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
)

type required struct{ names []string }

// Required checks, on a block, that each of names is set when the block
// is. The framework checks a required attribute of a block even when the
// block is left out, so an optional block's required settings are
// optional attributes with this on the block.
func Required(names ...string) validator.Object { return required{names} }

func (v required) Description(context.Context) string {
	return strings.Join(v.names, ", ") + " must be set in the block"
}

func (v required) MarkdownDescription(ctx context.Context) string { return v.Description(ctx) }

func (v required) ValidateObject(_ context.Context, req validator.ObjectRequest, resp *validator.ObjectResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	attrs := req.ConfigValue.Attributes()
	for _, n := range v.names {
		if a := attrs[n]; a == nil || a.IsNull() {
			resp.Diagnostics.AddAttributeError(req.Path.AtName(n), "Missing Required Argument",
				fmt.Sprintf("The argument %q is required in the %s block, but it is not set.", n, req.Path))
		}
	}
}
