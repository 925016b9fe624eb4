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
	"github.com/vmconv/terraform-provider-vmconv/internal/testimg"
	"github.com/vmconv/terraform-provider-vmconv/internal/vcsimtest"
)

// TestAccDiskConversion_vsphere converts a VM's disk (an ESXi-layout vmfs
// descriptor and flat extent on the simulator's datastore) from govmomi's
// vCenter simulator on loopback, through a snapshot; the plan reads only
// the VM's configuration, and the password reaches neither the state nor
// the plan file nor the report.
func TestAccDiskConversion_vsphere(t *testing.T) {
	s := vcsimtest.Start(t)
	dir := filepath.Join(s.DatastoreDir("LocalDS_0"), "DC0_H0_VM0")
	if _, err := testimg.VMFSFlat(dir, "disk1", 0x1111, 8*mib, baseLayer); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "web.qcow2")
	cfg := vsphereProvider(t.TempDir()) + fmt.Sprintf(`

resource "vmconv_disk_conversion" "web" {
  source {
    vsphere {
      url        = %q
      datacenter = "DC0"
      vm         = "DC0_H0_VM0"
      thumbprint = %q
    }
  }
  output { path = %q }
  plan_path = %q
%s
}
`, s.URL, s.Thumbprint, out, out+".plan.json", dataPlaneOnly)
	const name = "vmconv_disk_conversion.web"
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { acctest.PreCheck(t) },
		ProtoV6ProviderFactories: acctest.ProviderFactories,
		Steps: []resource.TestStep{{
			Config: cfg,
			ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
				plancheck.ExpectKnownValue(name, tfjsonpath.New("source_fingerprint"), knownvalue.StringRegexp(regexpMust(`^vsphere:v1:[0-9a-f]{64}$`))),
				plancheck.ExpectUnknownValue(name, tfjsonpath.New("source_format")),
			}},
			Check: resource.ComposeAggregateTestCheckFunc(
				checkOutput(out, testimg.NewExpected(8*mib, baseLayer)),
				resource.TestCheckResourceAttr(name, "source_format", "vmdk"),
				resource.TestCheckResourceAttr(name, "source.vsphere.snapshot", "create"),
				func(st *terraform.State) error {
					for k, v := range st.RootModule().Resources[name].Primary.Attributes {
						if strings.Contains(v, vcsimtest.Password) {
							return fmt.Errorf("state attribute %s holds the password", k)
						}
					}
					for _, f := range []string{out + ".plan.json", out + ".vmconv.json"} {
						b, err := os.ReadFile(f)
						if err != nil {
							return err
						}
						if strings.Contains(string(b), vcsimtest.Password) {
							return fmt.Errorf("%s holds the password", f)
						}
					}
					return nil
				}),
		}},
	})
}
