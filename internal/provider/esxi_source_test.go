package provider_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/vmconv/terraform-provider-vmconv/internal/acctest"
	"github.com/vmconv/terraform-provider-vmconv/internal/sshdtest"
	"github.com/vmconv/terraform-provider-vmconv/internal/testimg"
)

// TestAccDiskConversion_esxiSSH converts an ESXi-layout snapshot chain (a
// vmfsSparse delta on a vmfs base with its flat extent) from a real sshd on
// loopback. A host key that is not the server's is refused; with the right
// one the chain is copied and converted; the private key (write-only)
// reaches neither the state nor the plan file nor the report.
func TestAccDiskConversion_esxiSSH(t *testing.T) {
	if os.Getenv("TF_ACC") == "" {
		t.Skip("TF_ACC is not set: acceptance tests skipped (make test sets it)")
	}
	s := sshdtest.Start(t)
	src := t.TempDir()
	os.Chmod(src, 0o755)
	if _, err := testimg.VMFSFlat(src, "web", 0x1111, 8*mib, baseLayer); err != nil {
		t.Fatal(err)
	}
	head, err := testimg.VMFSSparse(src, "web-000001", "web.vmdk", 0x2222, 0x1111, 8*mib, 1, snap1)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "web.qcow2")
	cfg := func(hostKey string) string {
		return fmt.Sprintf(`
provider "vmconv" {
  cache_dir = %q
}

resource "vmconv_disk_conversion" "web" {
  source {
    esxi_ssh {
      host        = %q
      user        = %q
      private_key = %q
      host_key    = %q
      path        = %q
    }
  }
  output { path = %q }
  plan_path = %q
%s
}
`, t.TempDir(), s.Addr, s.User, s.PrivateKey, hostKey, head, out, out+".plan.json", dataPlaneOnly)
	}
	keyMarker := strings.Split(strings.TrimSpace(s.PrivateKey), "\n")[2]
	const name = "vmconv_disk_conversion.web"
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { acctest.PreCheck(t) },
		ProtoV6ProviderFactories: acctest.ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config:      cfg(s.OtherHostKey),
				ExpectError: wrapTolerant(`(?s)Server Identity Not Trusted.*is not the pinned one`),
			},
			{
				Config: cfg(s.HostKey),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectKnownValue(name, tfjsonpath.New("source_fingerprint"), knownvalue.StringRegexp(regexpMust(`^esxi:v1:[0-9a-f]{64}$`))),
					plancheck.ExpectUnknownValue(name, tfjsonpath.New("chain")),
				}},
				Check: resource.ComposeAggregateTestCheckFunc(
					checkOutput(out, testimg.NewExpected(8*mib, baseLayer, snap1)),
					resource.TestCheckResourceAttr(name, "chain.#", "2"),
					resource.TestCheckNoResourceAttr(name, "source.esxi_ssh.private_key"),
					func(st *terraform.State) error {
						for k, v := range st.RootModule().Resources[name].Primary.Attributes {
							if strings.Contains(v, keyMarker) {
								return fmt.Errorf("state attribute %s holds the private key", k)
							}
						}
						for _, f := range []string{out + ".plan.json", out + ".vmconv.json"} {
							b, _ := os.ReadFile(f)
							if len(b) == 0 || strings.Contains(string(b), keyMarker) {
								return fmt.Errorf("%s is missing or holds the private key", f)
							}
						}
						return nil
					}),
			},
		},
	})
}
