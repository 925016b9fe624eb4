package validators

import (
	"context"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
)

func TestDuration(t *testing.T) {
	v := Duration(time.Second, time.Hour)
	for in, ok := range map[string]bool{"": true, "90s": true, "10m": true, "1h": true, "2h": false, "500ms": false, "ten minutes": false, "10": false} {
		resp := &validator.StringResponse{}
		v.ValidateString(context.Background(), validator.StringRequest{Path: path.Root("t"), ConfigValue: types.StringValue(in)}, resp)
		if resp.Diagnostics.HasError() == ok {
			t.Errorf("%q: errors %v, want ok=%v", in, resp.Diagnostics, ok)
		}
	}
}
