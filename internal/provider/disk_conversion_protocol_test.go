package provider_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/hashicorp/terraform-plugin-go/tftypes"

	"github.com/vmconv/terraform-provider-vmconv/internal/acctest"
	"github.com/vmconv/terraform-provider-vmconv/internal/provider"
	"github.com/vmconv/terraform-provider-vmconv/internal/testimg"
)

// TestAccDiskConversion_sourceChangedBetweenPlanAndCreate speaks the plugin
// protocol as Terraform's apply does (PlanResourceChange, then
// ApplyResourceChange, in one provider process) and writes to the source
// in between, where no CLI run can. Create applies the engine plan its
// ModifyPlan made, so the change must be caught by Apply's re-check of the
// source against that plan: the conversion fails as Source Disk Changed
// After Plan, and nothing is written.
func TestAccDiskConversion_sourceChangedBetweenPlanAndCreate(t *testing.T) {
	acctest.PreCheck(t)
	if os.Getenv("TF_ACC") == "" {
		t.Skip("TF_ACC not set")
	}
	t.Setenv("VMCONV_CACHE_DIR", t.TempDir())
	src, out := t.TempDir(), t.TempDir()
	head := chainIn(t, src)[0]
	outPath := filepath.Join(out, "web.qcow2")
	ctx := context.Background()
	server, err := providerserver.NewProtocol6WithError(provider.New("test")())()
	if err != nil {
		t.Fatal(err)
	}
	schemas, err := server.GetProviderSchema(ctx, &tfprotov6.GetProviderSchemaRequest{})
	if err != nil {
		t.Fatal(err)
	}
	const typeName = "vmconv_disk_conversion"
	providerType, resourceType := schemas.Provider.ValueType(), schemas.ResourceSchemas[typeName].ValueType()
	dynamic := func(typ tftypes.Type, v tftypes.Value) *tfprotov6.DynamicValue {
		dv, err := tfprotov6.NewDynamicValue(typ, v)
		if err != nil {
			t.Fatal(err)
		}
		return &dv
	}
	failed := func(what string, diags []*tfprotov6.Diagnostic) {
		for _, d := range diags {
			if d.Severity == tfprotov6.DiagnosticSeverityError {
				t.Fatalf("%s: %s: %s", what, d.Summary, d.Detail)
			}
		}
	}
	conf, err := server.ConfigureProvider(ctx, &tfprotov6.ConfigureProviderRequest{Config: dynamic(providerType, objectOf(providerType, nil))})
	if err != nil {
		t.Fatal(err)
	}
	failed("configuring the provider", conf.Diagnostics)

	config := objectOf(resourceType, map[string]any{
		"source":    map[string]any{"path": head},
		"output":    map[string]any{"path": outPath},
		"fixes":     map[string]any{"enabled": false},
		"boot_test": map[string]any{"enabled": false},
	})
	null := tftypes.NewValue(resourceType, nil)
	plan, err := server.PlanResourceChange(ctx, &tfprotov6.PlanResourceChangeRequest{
		TypeName: typeName, PriorState: dynamic(resourceType, null), ProposedNewState: dynamic(resourceType, config), Config: dynamic(resourceType, config),
	})
	if err != nil {
		t.Fatal(err)
	}
	failed("planning", plan.Diagnostics)

	if err := testimg.QemuWrite(head, "vmdk", testimg.Layer{{Offset: 0, Length: 4096, Byte: 0x42}}); err != nil {
		t.Fatal(err)
	}
	applied, err := server.ApplyResourceChange(ctx, &tfprotov6.ApplyResourceChangeRequest{
		TypeName: typeName, PriorState: dynamic(resourceType, null), PlannedState: plan.PlannedState, Config: dynamic(resourceType, config),
		PlannedPrivate: plan.PlannedPrivate,
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range applied.Diagnostics {
		got = append(got, d.Summary+": "+d.Detail)
	}
	flat := strings.Join(strings.Fields(strings.Join(got, "\n")), " ")
	// Apply's re-check words it so; a re-plan in Create would say "the
	// source changed between plan and apply".
	for _, want := range []string{"Source Disk Changed After Plan", "the source disk changed after the plan was made", "Planned fingerprint:"} {
		if !strings.Contains(flat, want) {
			t.Errorf("apply diagnostics lack %q:\n%s", want, strings.Join(got, "\n"))
		}
	}
	if _, err := os.Lstat(outPath); err == nil {
		t.Error("an apply refused for a changed source wrote the output")
	}
}

// objectOf builds a value of an object type: the attributes in set (nested
// objects as maps), every other one null.
func objectOf(typ tftypes.Type, set map[string]any) tftypes.Value {
	ot := typ.(tftypes.Object)
	vals := map[string]tftypes.Value{}
	for name, at := range ot.AttributeTypes {
		switch v := set[name].(type) {
		case nil:
			vals[name] = tftypes.NewValue(at, nil)
		case map[string]any:
			vals[name] = objectOf(at, v)
		default:
			vals[name] = tftypes.NewValue(at, v)
		}
	}
	return tftypes.NewValue(ot, vals)
}
