// Package validators holds the provider's custom attribute validators.
package validators

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
)

type duration struct {
	min, max time.Duration
}

// Duration checks that a string is a Go duration ("90s", "10m", "1h30m")
// within [min, max].
func Duration(min, max time.Duration) validator.String { return duration{min, max} }

func (d duration) Description(context.Context) string {
	return fmt.Sprintf("a duration such as \"90s\" or \"10m\", between %s and %s", d.min, d.max)
}

func (d duration) MarkdownDescription(ctx context.Context) string { return d.Description(ctx) }

func (d duration) ValidateString(ctx context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() || req.ConfigValue.ValueString() == "" {
		return
	}
	v, err := time.ParseDuration(req.ConfigValue.ValueString())
	if err != nil {
		resp.Diagnostics.AddAttributeError(req.Path, "Invalid Duration",
			fmt.Sprintf("%q is not a duration. Use a number with a unit: \"90s\", \"10m\", \"1h30m\".", req.ConfigValue.ValueString()))
		return
	}
	if v < d.min || v > d.max {
		resp.Diagnostics.AddAttributeError(req.Path, "Duration Out Of Range",
			fmt.Sprintf("%s is not between %s and %s.", v, d.min, d.max))
	}
}
