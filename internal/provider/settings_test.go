package provider

import (
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/vmconv/terraform-provider-vmconv/engine"
)

// boolSetting: the attribute wins, then the environment, then the default;
// an environment value that is not a boolean is an error naming it.
func TestBoolSetting(t *testing.T) {
	const env = "VMCONV_TEST_BOOL_SETTING"
	for _, c := range []struct {
		attr     types.Bool
		env      string
		def      bool
		want, ok bool
	}{
		{types.BoolNull(), "", true, true, true},
		{types.BoolNull(), "", false, false, true},
		{types.BoolNull(), "true", false, true, true},
		{types.BoolNull(), "0", true, false, true},
		{types.BoolValue(false), "true", true, false, true},
		{types.BoolValue(true), "nonsense", false, true, true},
		{types.BoolNull(), "yes please", false, false, false},
	} {
		t.Setenv(env, c.env)
		var diags diag.Diagnostics
		got, ok := boolSetting(c.attr, env, c.def, "plan_fetch", &diags)
		if got != c.want || ok != c.ok || diags.HasError() == c.ok {
			t.Errorf("%v, %s=%q, default %v: got %v, %v, %v", c.attr, env, c.env, c.def, got, ok, diags)
		}
		if !c.ok && (len(diags) != 1 || diags[0].Summary() != "Invalid Environment Setting") {
			t.Errorf("diagnostics %v", diags)
		}
	}
}

// A fault's subject is labelled by what it is, not always "File".
func TestSubjectLabel(t *testing.T) {
	for v, want := range map[string]string{
		"/data/web/web.vmdk":                           "File",
		"https://files.example/web.vmdk?REDACTED":      "URL",
		"qemu+ssh://root@kvm1.example/system":          "URI",
		"esxi01.example:/vmfs/volumes/ds1/web/web.vmx": "Source",
		"web.vmdk": "File",
	} {
		if got := subjectLabel(v); got != want {
			t.Errorf("subjectLabel(%q) = %q, want %q", v, got, want)
		}
	}
}

// TestStalePlan: which source changes refuse a plan as stale.
func TestStalePlan(t *testing.T) {
	f1, f2 := "v1:one", "v1:two"
	now := &engine.Plan{Source: engine.SourcePlan{Path: "/src/web.vmdk", Fingerprint: f2}}
	for _, c := range []struct {
		name  string
		state *string
		last  engine.PlanRecord
		want  bool
	}{
		{"create planned before the change", nil, engine.PlanRecord{Source: "/src/web.vmdk", Fingerprint: f1}, true},
		{"create of another source", nil, engine.PlanRecord{Source: "/src/db.vmdk", Fingerprint: f1}, false},
		{"nothing changed since", nil, engine.PlanRecord{Source: "/src/web.vmdk", Fingerprint: f2}, false},
		{"update planned against the state's source", &f1, engine.PlanRecord{Source: "/src/web.vmdk", Fingerprint: f1, Changes: true}, true},
		{"no-op plan, then the source changed", &f1, engine.PlanRecord{Source: "/src/web.vmdk", Fingerprint: f1}, false},
		{"update planned against another source", &f1, engine.PlanRecord{Source: "/src/web.vmdk", Fingerprint: "v1:zero", Changes: true}, false},
	} {
		if got := stalePlan(c.state, &c.last, now); got != c.want {
			t.Errorf("%s: stalePlan = %v, want %v", c.name, got, c.want)
		}
	}
}
