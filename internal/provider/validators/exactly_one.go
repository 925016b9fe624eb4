package validators

import (
	"context"
	"fmt"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types/basetypes"
)

type exactlyOne struct{ names []string }

// ExactlyOneOf checks, on a block, that exactly one of its fields names is
// set: not null, and for a repeated block not empty. It is checked on the
// block rather than on each field because a field's own validators also run
// when its block is absent, where none is set and none need be.
func ExactlyOneOf(names ...string) validator.Object { return exactlyOne{names} }

func (v exactlyOne) Description(context.Context) string {
	return "exactly one of " + strings.Join(v.names, ", ") + " is set"
}

func (v exactlyOne) MarkdownDescription(ctx context.Context) string { return v.Description(ctx) }

func (v exactlyOne) ValidateObject(_ context.Context, req validator.ObjectRequest, resp *validator.ObjectResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	attrs := req.ConfigValue.Attributes()
	var all, set []string
	for _, n := range v.names {
		all = append(all, req.Path.AtName(n).String())
		val := attrs[n]
		if val == nil || val.IsUnknown() {
			return // an unknown value may be either; apply decides
		}
		if isSet(val) {
			set = append(set, req.Path.AtName(n).String())
		}
	}
	switch len(set) {
	case 1:
	case 0:
		resp.Diagnostics.AddAttributeError(req.Path, "Invalid Attribute Combination",
			fmt.Sprintf("Set one of %s; none is set.", strings.Join(all, ", ")))
	default:
		resp.Diagnostics.AddAttributeError(req.Path, "Invalid Attribute Combination",
			fmt.Sprintf("Set only one of %s; %s are all set.", strings.Join(all, ", "), strings.Join(set, " and ")))
	}
}

func isSet(v attr.Value) bool {
	if v.IsNull() {
		return false
	}
	if l, ok := v.(basetypes.ListValue); ok {
		return len(l.Elements()) > 0
	}
	return true
}
