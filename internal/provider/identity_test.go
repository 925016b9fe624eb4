package provider_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/hashicorp/terraform-plugin-go/tftypes"
)

// TestAccIdentity speaks the plugin protocol as Terraform 1.12+ and
// OpenTofu 1.12+ do for resource identity (the CLI in CI, 1.11, does not
// send it): a conversion's apply and read return its identity, an import
// block naming that identity imports the very conversion, and an identity
// that names nothing is refused with what to set.
func TestAccIdentity(t *testing.T) {
	h := newProtocolHarness(t)
	ctx, server, dynamic := h.ctx, h.server, h.dynamic
	ids, err := server.GetResourceIdentitySchemas(ctx, &tfprotov6.GetResourceIdentitySchemasRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for typ, want := range map[string][]string{
		"vmconv_disk_conversion": {"path", "pool", "volume"},
		"vmconv_vm_conversion":   {"dir", "pool", "volume"},
		"vmconv_kvm_domain":      {"name", "uuid"},
	} {
		s := ids.IdentitySchemas[typ]
		if s == nil {
			t.Fatalf("%s has no identity schema", typ)
		}
		var got []string
		for _, a := range s.IdentityAttributes {
			if !a.OptionalForImport {
				t.Errorf("%s.%s is not optional for import", typ, a.Name)
			}
			got = append(got, a.Name)
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("%s identity %v, want %v", typ, got, want)
		}
	}
	const typeName = "vmconv_disk_conversion"
	identityType := ids.IdentitySchemas[typeName].ValueType()
	outPath := filepath.Join(t.TempDir(), "web.qcow2")
	resourceType, config, plan := h.planDataPlaneCreate(chainIn(t, t.TempDir())[0], outPath)
	null := tftypes.NewValue(resourceType, nil)
	applied, err := server.ApplyResourceChange(ctx, &tfprotov6.ApplyResourceChangeRequest{
		TypeName: typeName, PriorState: dynamic(resourceType, null), PlannedState: plan.PlannedState, Config: dynamic(resourceType, config),
		PlannedPrivate: plan.PlannedPrivate, PlannedIdentity: plan.PlannedIdentity,
	})
	if err != nil || errorsOf(applied.Diagnostics) != "" {
		t.Fatalf("applying: %v %s", err, errorsOf(applied.Diagnostics))
	}
	identityOf := func(what string, d *tfprotov6.ResourceIdentityData) map[string]tftypes.Value {
		if d == nil || d.IdentityData == nil {
			t.Fatalf("%s returned no identity", what)
		}
		v, err := d.IdentityData.Unmarshal(identityType)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]tftypes.Value{}
		if err := v.As(&m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	wantFile := func(what string, m map[string]tftypes.Value) {
		var p string
		if err := m["path"].As(&p); err != nil || p != outPath || !m["pool"].IsNull() || !m["volume"].IsNull() {
			t.Errorf("%s identity %v, want path %s alone", what, m, outPath)
		}
	}
	wantFile("apply", identityOf("apply", applied.NewIdentity))

	// An import block with that identity, the path given relative as a
	// person may write it: the same conversion, its state from its report.
	wd, _ := os.Getwd()
	rel, err := filepath.Rel(wd, outPath)
	if err != nil {
		t.Fatal(err)
	}
	identity := func(path, pool, volume any) *tfprotov6.ResourceIdentityData {
		return &tfprotov6.ResourceIdentityData{IdentityData: dynamic(identityType, objectOf(identityType, map[string]any{"path": path, "pool": pool, "volume": volume}))}
	}
	imported, err := server.ImportResourceState(ctx, &tfprotov6.ImportResourceStateRequest{TypeName: typeName, Identity: identity(rel, nil, nil)})
	if err != nil || errorsOf(imported.Diagnostics) != "" || len(imported.ImportedResources) != 1 {
		t.Fatalf("importing: %v %s", err, errorsOf(imported.Diagnostics))
	}
	ir := imported.ImportedResources[0]
	read, err := server.ReadResource(ctx, &tfprotov6.ReadResourceRequest{TypeName: typeName, CurrentState: ir.State, CurrentIdentity: ir.Identity, Private: ir.Private})
	if err != nil || errorsOf(read.Diagnostics) != "" {
		t.Fatalf("reading the import: %v %s", err, errorsOf(read.Diagnostics))
	}
	wantFile("read after import", identityOf("read", read.NewIdentity))
	st, err := read.NewState.Unmarshal(resourceType)
	if err != nil {
		t.Fatal(err)
	}
	var attrs map[string]tftypes.Value
	st.As(&attrs)
	var id, sum string
	attrs["id"].As(&id)
	attrs["output_sha256"].As(&sum)
	if id != outPath || len(sum) != 64 {
		t.Errorf("imported state: id %q, output_sha256 %q", id, sum)
	}

	// Identities that name no output, or two.
	for _, bad := range []*tfprotov6.ResourceIdentityData{identity(nil, "vmconv", nil), identity(outPath, "vmconv", "web.qcow2"), identity(nil, nil, nil)} {
		r, err := server.ImportResourceState(ctx, &tfprotov6.ImportResourceStateRequest{TypeName: typeName, Identity: bad})
		if err != nil {
			t.Fatal(err)
		}
		if got := errorsOf(r.Diagnostics); !strings.Contains(got, "Invalid Import Identity") || !strings.Contains(got, "set one of the two") {
			t.Errorf("identity %v: %q", bad, got)
		}
	}
}
