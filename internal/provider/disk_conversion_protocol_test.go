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
	src, out := t.TempDir(), t.TempDir()
	head := chainIn(t, src)[0]
	outPath := filepath.Join(out, "web.qcow2")
	h := newProtocolHarness(t)
	ctx, server, dynamic := h.ctx, h.server, h.dynamic
	resourceType, config, plan := h.planDataPlaneCreate(head, outPath)
	const typeName = "vmconv_disk_conversion"
	null := tftypes.NewValue(resourceType, nil)

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

// protocolHarness is a provider server spoken to as Terraform does, with
// the provider configured with its defaults.
type protocolHarness struct {
	t       *testing.T
	ctx     context.Context
	server  tfprotov6.ProviderServer
	schemas *tfprotov6.GetProviderSchemaResponse
}

// newProtocolHarness skips without TF_ACC, like the acceptance tests, and
// gives the provider a cache of its own.
func newProtocolHarness(t *testing.T) *protocolHarness {
	t.Helper()
	acctest.PreCheck(t)
	if os.Getenv("TF_ACC") == "" {
		t.Skip("TF_ACC not set")
	}
	t.Setenv("VMCONV_CACHE_DIR", t.TempDir())
	h := &protocolHarness{t: t, ctx: context.Background()}
	var err error
	if h.server, err = providerserver.NewProtocol6WithError(provider.New("test")())(); err != nil {
		t.Fatal(err)
	}
	if h.schemas, err = h.server.GetProviderSchema(h.ctx, &tfprotov6.GetProviderSchemaRequest{}); err != nil {
		t.Fatal(err)
	}
	providerType := h.schemas.Provider.ValueType()
	conf, err := h.server.ConfigureProvider(h.ctx, &tfprotov6.ConfigureProviderRequest{Config: h.dynamic(providerType, objectOf(providerType, nil))})
	if err != nil {
		t.Fatal(err)
	}
	h.failed("configuring the provider", conf.Diagnostics)
	return h
}

// planDataPlaneCreate plans, as Terraform does, a new
// vmconv_disk_conversion of src into out with fixes and boot test off,
// and stops the test if the plan fails.
func (h *protocolHarness) planDataPlaneCreate(src, out string) (tftypes.Type, tftypes.Value, *tfprotov6.PlanResourceChangeResponse) {
	h.t.Helper()
	const typeName = "vmconv_disk_conversion"
	resourceType := h.schemas.ResourceSchemas[typeName].ValueType()
	config := objectOf(resourceType, map[string]any{
		"source":    map[string]any{"path": src},
		"output":    map[string]any{"path": out},
		"fixes":     map[string]any{"enabled": false},
		"boot_test": map[string]any{"enabled": false},
	})
	null := tftypes.NewValue(resourceType, nil)
	plan, err := h.server.PlanResourceChange(h.ctx, &tfprotov6.PlanResourceChangeRequest{
		TypeName: typeName, PriorState: h.dynamic(resourceType, null), ProposedNewState: h.dynamic(resourceType, config), Config: h.dynamic(resourceType, config),
	})
	if err != nil {
		h.t.Fatal(err)
	}
	h.failed("planning", plan.Diagnostics)
	return resourceType, config, plan
}

func (h *protocolHarness) dynamic(typ tftypes.Type, v tftypes.Value) *tfprotov6.DynamicValue {
	dv, err := tfprotov6.NewDynamicValue(typ, v)
	if err != nil {
		h.t.Fatal(err)
	}
	return &dv
}

// failed stops the test on an error diagnostic.
func (h *protocolHarness) failed(what string, diags []*tfprotov6.Diagnostic) {
	h.t.Helper()
	if msg := errorsOf(diags); msg != "" {
		h.t.Fatalf("%s: %s", what, msg)
	}
}

// errorsOf is the error diagnostics, one per line.
func errorsOf(diags []*tfprotov6.Diagnostic) string {
	var out []string
	for _, d := range diags {
		if d.Severity == tfprotov6.DiagnosticSeverityError {
			out = append(out, d.Summary+": "+d.Detail)
		}
	}
	return strings.Join(out, "\n")
}
