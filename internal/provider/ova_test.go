package provider_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/vmconv/terraform-provider-vmconv/engine"
	"github.com/vmconv/terraform-provider-vmconv/internal/acctest"
	"github.com/vmconv/terraform-provider-vmconv/internal/testimg"
)

func ovaConversion(ova, out, extra string) string {
	return fmt.Sprintf(`
resource "vmconv_disk_conversion" "web" {
  source {
    ova { path = %s }
  }
  output { path = %s }
  plan_path = %s
%s
}
`, acctest.HCLString(ova), acctest.HCLString(out), acctest.HCLString(out+".plan.json"), extra)
}

// TestAccDiskConversion_ova converts a vSphere-style OVA (OVF, manifest,
// VMware-layout streamOptimized disk): the plan knows the disk, the apply
// writes its bytes, the OVF's facts land in the plan file, and a source
// with both kinds set is refused.
func TestAccDiskConversion_ova(t *testing.T) {
	src, outDir := t.TempDir(), t.TempDir()
	disk := filepath.Join(t.TempDir(), "web-disk1.vmdk")
	if err := testimg.StreamOptimized(disk, 8*mib, baseLayer); err != nil {
		t.Fatal(err)
	}
	ova := filepath.Join(src, "web.ova")
	if err := testimg.OVA(ova, "web", testimg.OVF("web", "web-disk1.vmdk", 8, 2, 2048, true), disk); err != nil {
		t.Fatal(err)
	}
	before, _ := acctest.DirSums(src)
	out := filepath.Join(outDir, "web.qcow2")
	const name = "vmconv_disk_conversion.web"
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { acctest.PreCheck(t) },
		ProtoV6ProviderFactories: acctest.ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config:      fmt.Sprintf("resource \"vmconv_disk_conversion\" \"web\" {\n  source {\n    path = %q\n    ova { path = %q }\n  }\n  output { path = %q }\n}\n", disk, ova, out),
				ExpectError: wrapTolerant(`(?s)Invalid Attribute Combination.*source\.path`),
			},
			{
				Config: ovaConversion(ova, out, dataPlaneOnly),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectKnownValue(name, tfjsonpath.New("source_format"), knownvalue.StringExact("vmdk")),
					plancheck.ExpectKnownValue(name, tfjsonpath.New("virtual_size"), knownvalue.Int64Exact(8*mib)),
					plancheck.ExpectKnownValue(name, tfjsonpath.New("planned_stages").AtSliceIndex(0), knownvalue.StringRegexp(regexpMust(`^fetch: extract disk 0 from the OVA, .*; disk 0 is web-disk1\.vmdk of web$`))),
				}},
				Check: resource.ComposeAggregateTestCheckFunc(
					checkOutput(out, testimg.NewExpected(8*mib, baseLayer)),
					checkSourceUntouched(src, &before),
					func(*terraform.State) error {
						b, err := os.ReadFile(out + ".plan.json")
						if err != nil {
							return err
						}
						p, err := engine.ParsePlan(b)
						if err != nil {
							return err
						}
						if o := p.Source.OVF; o == nil || o.CPUs != 2 || o.MemoryMiB != 2048 || o.Firmware != "uefi" || len(o.NICs) != 1 || o.NICs[0].MAC != "00:50:56:8a:3c:1e" {
							return fmt.Errorf("plan file OVF facts: %+v", p.Source.OVF)
						}
						return nil
					}),
			},
			{
				// A tampered archive: the manifest no longer matches.
				PreConfig: func() {
					b, _ := os.ReadFile(ova)
					i := strings.LastIndex(string(b), "KDMV") // inside the disk member
					b[i+600] ^= 0xff
					os.WriteFile(ova, b, 0o644)
				},
				Config:      ovaConversion(ova, out, dataPlaneOnly),
				ExpectError: wrapTolerant(`(?s)Source Checksum Mismatch.*web-disk1\.vmdk.*the manifest says`),
			},
		},
	})
}

// TestAccDiskConversion_ovaURL takes the OVA from a loopback HTTP server:
// the plan works from the server's metadata, the apply downloads and
// extracts it, and the checksum is verified.
func TestAccDiskConversion_ovaURL(t *testing.T) {
	disk := filepath.Join(t.TempDir(), "web-disk1.vmdk")
	if err := testimg.StreamOptimized(disk, 8*mib, snap1); err != nil {
		t.Fatal(err)
	}
	ova := filepath.Join(t.TempDir(), "web.ova")
	if err := testimg.OVA(ova, "web", testimg.OVF("web", "web-disk1.vmdk", 8, 2, 2048, false), disk); err != nil {
		t.Fatal(err)
	}
	sum, _ := acctest.SHA256File(ova)
	// The server wants a credential in a header, which the configuration
	// gives write-only: the URL in state then needs none.
	const token = "Bearer ova-t0ken-5e2"
	files := http.FileServer(http.Dir(filepath.Dir(ova)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != token {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		files.ServeHTTP(w, r)
	}))
	defer srv.Close()
	out := filepath.Join(t.TempDir(), "web.qcow2")
	cfg := func(sha string) string {
		return fmt.Sprintf(`
provider "vmconv" {
  cache_dir = %q
}

resource "vmconv_disk_conversion" "web" {
  source {
    ova {
      url     = %q
      sha256  = %q
      headers = { Authorization = %q }
    }
  }
  output { path = %q }
%s
}
`, t.TempDir(), srv.URL+"/web.ova", sha, token, out, dataPlaneOnly)
	}
	const name = "vmconv_disk_conversion.web"
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { acctest.PreCheck(t) },
		ProtoV6ProviderFactories: acctest.ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config:      cfg(strings.Repeat("0", 64)),
				ExpectError: wrapTolerant(`(?s)Source Checksum Mismatch.*web\.ova`),
			},
			{
				Config: cfg(sum),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectUnknownValue(name, tfjsonpath.New("source_format")),
				}},
				Check: resource.ComposeAggregateTestCheckFunc(
					checkOutput(out, testimg.NewExpected(8*mib, snap1)),
					resource.TestCheckResourceAttr(name, "source_format", "vmdk"),
					resource.TestCheckNoResourceAttr(name, "source.ova.headers.%"),
					func(s *terraform.State) error {
						for k, v := range s.RootModule().Resources[name].Primary.Attributes {
							if strings.Contains(v, "t0ken") {
								return fmt.Errorf("state attribute %s holds the header's credential", k)
							}
						}
						for _, f := range []string{out + ".vmconv.json", out + ".vmconv.md"} {
							if b, err := os.ReadFile(f); err != nil || strings.Contains(string(b), "t0ken") {
								return fmt.Errorf("%s holds the header's credential (%v)", f, err)
							}
						}
						return nil
					},
				),
			},
		},
	})
}
