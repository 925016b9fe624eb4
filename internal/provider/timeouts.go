package provider

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
)

// timeoutsBlock is the timeouts block (a block, so that a misspelt
// operation fails the plan), each of whose durations must parse and be
// positive when the plan is made: the package accepts "-5m", which only
// fails at apply, as a cancelled conversion.
func timeoutsBlock(ctx context.Context) schema.Block {
	b := timeouts.Block(ctx, timeouts.Opts{Create: true, Read: true, Update: true, Delete: true})
	n, ok := b.(schema.SingleNestedBlock)
	if !ok {
		return b
	}
	for name, sub := range n.Attributes {
		if s, ok := sub.(schema.StringAttribute); ok {
			s.Validators = append(s.Validators, positiveDuration{})
			n.Attributes[name] = s
		}
	}
	return n
}

type positiveDuration struct{}

func (positiveDuration) Description(context.Context) string {
	return "a positive duration, such as \"30m\" or \"2h\""
}

func (v positiveDuration) MarkdownDescription(ctx context.Context) string { return v.Description(ctx) }

func (positiveDuration) ValidateString(_ context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	// A string that does not parse is the package's own validator's error.
	if d, err := time.ParseDuration(req.ConfigValue.ValueString()); err == nil && d <= 0 {
		resp.Diagnostics.AddAttributeError(req.Path, "Invalid Timeout",
			fmt.Sprintf("%q is not a positive duration: a timeout must be longer than zero, such as \"30m\" or \"2h\".", req.ConfigValue.ValueString()))
	}
}
