package provider_test

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/vmconv/terraform-provider-vmconv/internal/acctest"
)

// cliHasIdentityImport reports whether the CLI under test takes an
// identity in an import block: Terraform and OpenTofu from 1.12 do (both
// report their version as terraform_version in version -json).
func cliHasIdentityImport(t *testing.T, cli *acctest.CLI) (bool, string) {
	t.Helper()
	var v struct {
		Version string `json:"terraform_version"`
	}
	if err := json.Unmarshal([]byte(cli.MustRun("version", "-json")), &v); err != nil {
		t.Fatalf("version -json: %v", err)
	}
	parts := strings.SplitN(v.Version, ".", 3)
	if len(parts) < 2 {
		t.Fatalf("cannot read the CLI's version %q", v.Version)
	}
	major, _ := strconv.Atoi(parts[0])
	minor, _ := strconv.Atoi(parts[1])
	return major > 1 || (major == 1 && minor >= 12), v.Version
}

// TestAccCLI_importBlock adopts an existing conversion into a new state
// the way a user does with the CLI: an import block, plan, apply, and then
// an empty plan. Under Terraform or OpenTofu 1.12+ the block names the
// conversion by its identity (the output path); an identity naming no
// output is refused at plan with what to set. Older CLIs have no identity
// in import blocks, and get the same adoption by ID. CI runs this under
// terraform 1.11 (the ID) and OpenTofu 1.12 (the identity).
func TestAccCLI_importBlock(t *testing.T) {
	head, outPath, cli := chainCLI(t)
	identity, version := cliHasIdentityImport(t, cli)
	cli.Write(savedPlanConfig(head, outPath, ""))
	cli.MustRun("apply", "-input=false", "-auto-approve")
	sum, err := acctest.SHA256File(outPath)
	if err != nil {
		t.Fatal(err)
	}
	// A new state: the conversion exists, Terraform no longer knows it.
	cli.MustRun("state", "rm", "vmconv_disk_conversion.web")

	by := fmt.Sprintf("id = %q", outPath)
	if identity {
		// An identity that names nothing usable is refused at plan.
		cli.Write(savedPlanConfig(head, outPath, "") + "import {\n  to = vmconv_disk_conversion.web\n  identity = {}\n}\n")
		got, err := cli.Run("plan", "-input=false", "-no-color")
		flat := strings.Join(strings.Fields(got), " ")
		if err == nil || !strings.Contains(flat, "Invalid Import Identity") || !strings.Contains(flat, `identity = { path = "/var/lib/vmconv/web" }`) {
			t.Fatalf("%s: an empty identity was not refused with what to set (err %v):\n%s", version, err, got)
		}
		by = fmt.Sprintf("identity = { path = %q }", outPath)
	}
	t.Logf("%s: importing by %s", version, by)
	cli.Write(savedPlanConfig(head, outPath, "") + "import {\n  to = vmconv_disk_conversion.web\n  " + by + "\n}\n")
	plan := strings.Join(strings.Fields(cli.MustRun("plan", "-input=false", "-no-color")), " ")
	if !strings.Contains(plan, "1 to import, 0 to add, 0 to change, 0 to destroy") {
		t.Fatalf("%s: importing by %s does not plan a bare import:\n%s", version, by, plan)
	}
	cli.MustRun("apply", "-input=false", "-auto-approve")
	if _, err := cli.Run("plan", "-input=false", "-detailed-exitcode", "-no-color"); err != nil {
		t.Errorf("%s: the plan after importing by %s is not empty: %v", version, by, err)
	}
	res := cli.StateResources()
	if len(res) != 1 {
		t.Fatalf("%s: %d resources in state after the import", version, len(res))
	}
	if got := res[0]["output_sha256"]; got != sum {
		t.Errorf("%s: imported output_sha256 %v, the file's %s", version, got, sum)
	}
	if now, _ := acctest.SHA256File(outPath); now != sum {
		t.Error("the import rewrote the output")
	}
}
