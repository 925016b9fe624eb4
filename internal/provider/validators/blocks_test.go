package validators

import (
	"context"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
)

var blockTypes = map[string]attr.Type{"path": types.StringType, "pool": types.StringType, "disks": types.ListType{ElemType: types.StringType}}

func block(path, pool attr.Value, disks ...string) types.Object {
	var elems []attr.Value
	for _, d := range disks {
		elems = append(elems, types.StringValue(d))
	}
	return types.ObjectValueMust(blockTypes, map[string]attr.Value{
		"path": path, "pool": pool, "disks": types.ListValueMust(types.StringType, elems),
	})
}

func validate(v validator.Object, o types.Object) string {
	resp := &validator.ObjectResponse{}
	v.ValidateObject(context.Background(), validator.ObjectRequest{Path: path.Root("output"), ConfigValue: o}, resp)
	var msgs []string
	for _, d := range resp.Diagnostics.Errors() {
		msgs = append(msgs, d.Summary()+": "+d.Detail())
	}
	return strings.Join(msgs, "\n")
}

func TestExactlyOneOf(t *testing.T) {
	v := ExactlyOneOf("path", "pool", "disks")
	s, null, unknown := types.StringValue("x"), types.StringNull(), types.StringUnknown()
	for _, c := range []struct {
		name string
		o    types.Object
		want string // "" for no error
	}{
		{"one set", block(s, null), ""},
		{"a repeated block set", block(null, null, "a"), ""},
		{"none set", block(null, null), "Set one of output.path, output.pool, output.disks; none is set."},
		{"two set", block(s, s), "output.path and output.pool are all set"},
		{"a block and a repeated block", block(null, s, "a"), "output.pool and output.disks are all set"},
		// Unknown may turn out either way: apply decides.
		{"unknown", block(unknown, null), ""},
		// A block left out is not checked: its own absence is fine.
		{"block left out", types.ObjectNull(blockTypes), ""},
	} {
		got := validate(v, c.o)
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
}

func TestRequired(t *testing.T) {
	v := Required("path", "pool")
	if got := validate(v, block(types.StringValue("x"), types.StringValue("y"))); got != "" {
		t.Errorf("both set: %s", got)
	}
	if got := validate(v, types.ObjectNull(blockTypes)); got != "" {
		t.Errorf("block left out: %s", got)
	}
	got := validate(v, block(types.StringValue("x"), types.StringNull()))
	if !strings.Contains(got, `Missing Required Argument: The argument "pool" is required in the output block`) || strings.Contains(got, `"path"`) {
		t.Errorf("pool missing: %s", got)
	}
}
