package provider_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/vmconv/terraform-provider-vmconv/engine"
	"github.com/vmconv/terraform-provider-vmconv/internal/acctest"
	"github.com/vmconv/terraform-provider-vmconv/internal/testimg"
)

const mib = testimg.MiB

var (
	baseLayer = testimg.BaseLayer
	snap1     = testimg.Snap1
	snap2     = testimg.Snap2
)

func conversionConfig(src, out, extraOutput string) string {
	return fmt.Sprintf(`
resource "vmconv_disk_conversion" "web" {
  source { path = %s }
  output {
    path        = %s
    format      = "qcow2"
    compression = false
    %s
  }
%s}
`, acctest.HCLString(src), acctest.HCLString(out), extraOutput, dataPlaneOnly)
}

// checkOutput verifies the output's bytes in Go and that output_sha256 is
// the file's real checksum.
func checkOutput(out string, want *testimg.Expected) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		rs := s.RootModule().Resources["vmconv_disk_conversion.web"]
		if rs == nil {
			return fmt.Errorf("resource not in state")
		}
		sum, err := acctest.SHA256File(out)
		if err != nil {
			return err
		}
		if got := rs.Primary.Attributes["output_sha256"]; got != sum {
			return fmt.Errorf("output_sha256 %s, file has %s", got, sum)
		}
		data, err := testimg.ReadQcow2(out)
		if err != nil {
			return err
		}
		return want.Compare(data)
	}
}

func checkSourceUntouched(dir string, before *string) resource.TestCheckFunc {
	return func(*terraform.State) error {
		now, err := acctest.DirSums(dir)
		if err != nil {
			return err
		}
		if now != *before {
			return fmt.Errorf("the source folder changed:\nbefore:\n%s\nafter:\n%s", *before, now)
		}
		return nil
	}
}

func TestAccDiskConversion_lifecycle(t *testing.T) {
	srcDir, outDir := t.TempDir(), t.TempDir()
	paths, err := testimg.VMDKChain(srcDir, "web", "monolithicSparse", 8*mib, baseLayer, snap1, snap2)
	if err != nil {
		t.Fatal(err)
	}
	head := paths[0]
	out := filepath.Join(outDir, "web.qcow2")
	want := testimg.NewExpected(8*mib, baseLayer, snap1, snap2)
	before, err := acctest.DirSums(srcDir)
	if err != nil {
		t.Fatal(err)
	}
	cfg := conversionConfig(head, out, "")
	name := "vmconv_disk_conversion.web"

	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { acctest.PreCheck(t) },
		ProtoV6ProviderFactories: acctest.ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config: cfg,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(name, plancheck.ResourceActionCreate),
					// Known before a byte moves.
					plancheck.ExpectKnownValue(name, tfjsonpath.New("source_format"), knownvalue.StringExact("vmdk")),
					plancheck.ExpectKnownValue(name, tfjsonpath.New("virtual_size"), knownvalue.Int64Exact(8*mib)),
					plancheck.ExpectKnownValue(name, tfjsonpath.New("chain"), knownvalue.ListExact([]knownvalue.Check{
						knownvalue.StringExact(paths[0]), knownvalue.StringExact(paths[1]), knownvalue.StringExact(paths[2]),
					})),
					plancheck.ExpectUnknownValue(name, tfjsonpath.New("output_sha256")),
					plancheck.ExpectKnownValue(name, tfjsonpath.New("estimated_output_size"), knownvalue.NotNull()),
					plancheck.ExpectKnownValue(name, tfjsonpath.New("planned_stages"), knownvalue.ListExact([]knownvalue.Check{
						knownvalue.StringRegexp(regexpMust(`^flatten: 3 layers merged newest first`)),
						knownvalue.StringRegexp(regexpMust(`^convert: write qcow2 to \S+ \(8\.0 MiB of disk, at most [0-9.]+ [KM]iB written\)$`)),
					})),
					// Fixes and boot test are off: nothing to inspect.
					plancheck.ExpectKnownValue(name, tfjsonpath.New("planned_fixes"), knownvalue.Null()),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(name, tfjsonpath.New("id"), knownvalue.StringExact(out)),
					statecheck.ExpectKnownValue(name, tfjsonpath.New("chain"), knownvalue.ListSizeExact(3)),
					statecheck.ExpectKnownValue(name, tfjsonpath.New("source_fingerprint"), knownvalue.StringRegexp(regexpMust(`^v1:[0-9a-f]{64}$`))),
					statecheck.ExpectKnownValue(name, tfjsonpath.New("report_path"), knownvalue.StringExact(out+".vmconv.json")),
				},
				Check: resource.ComposeAggregateTestCheckFunc(checkOutput(out, want), checkSourceUntouched(srcDir, &before),
					func(s *terraform.State) error {
						a := s.RootModule().Resources[name].Primary.Attributes
						est, _ := strconv.ParseInt(a["estimated_output_size"], 10, 64)
						got, _ := strconv.ParseInt(a["output_size"], 10, 64)
						if got == 0 || got > est {
							return fmt.Errorf("output %d bytes exceeds the estimate %d", got, est)
						}
						return nil
					}),
			},
			{
				// Nothing changed: refresh and plan show no drift.
				Config: cfg, PlanOnly: true,
			},
			{
				// The output was deleted outside Terraform: recreated.
				PreConfig: func() { os.Remove(out) },
				Config:    cfg,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(name, plancheck.ResourceActionCreate),
				}},
				Check: checkOutput(out, want),
			},
			{
				// The output was modified in place: replaced.
				PreConfig: func() {
					f, _ := os.OpenFile(out, os.O_RDWR, 0)
					f.WriteAt([]byte("tampered"), 0)
					f.Close()
				},
				Config: cfg,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(name, plancheck.ResourceActionDestroyBeforeCreate),
				}},
				Check: checkOutput(out, want),
			},
			{
				ResourceName: name, ImportState: true, ImportStateId: out,
				ImportStateVerify: true, ImportStateVerifyIgnore: []string{"timeouts"},
			},
			{
				// overwrite does not change the output's bytes: updated in place.
				Config: conversionConfig(head, out, "overwrite = true"),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(name, plancheck.ResourceActionUpdate),
				}},
			},
			{
				// The same fixes written differently (an empty windows
				// block) mean the same: no replacement, no bytes moved.
				Config: strings.Replace(conversionConfig(head, out, "overwrite = true"), "fixes { enabled = false }",
					"fixes {\n    enabled = false\n    windows {}\n  }", 1),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(name, plancheck.ResourceActionUpdate),
				}},
				Check: checkOutput(out, want),
			},
			{
				// A write to the newest snapshot layer: the plan replaces the output.
				PreConfig: func() {
					if err := testimg.QemuWrite(head, "vmdk", testimg.Layer{{Offset: 3 * mib, Length: 4096, Byte: 0x99}}); err != nil {
						t.Fatal(err)
					}
					want = testimg.NewExpected(8*mib, baseLayer, snap1, snap2, testimg.Layer{{Offset: 3 * mib, Length: 4096, Byte: 0x99}})
					before, _ = acctest.DirSums(srcDir)
				},
				Config: conversionConfig(head, out, "overwrite = true"),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(name, plancheck.ResourceActionDestroyBeforeCreate),
				}},
				Check: resource.ComposeAggregateTestCheckFunc(func(s *terraform.State) error { return checkOutput(out, want)(s) }, checkSourceUntouched(srcDir, &before)),
			},
		},
		CheckDestroy: func(*terraform.State) error {
			// The output, its report, and the lock file destroy took.
			entries, _ := os.ReadDir(filepath.Dir(out))
			for _, e := range entries {
				if strings.Contains(e.Name(), filepath.Base(out)) {
					return fmt.Errorf("%s still exists after destroy", e.Name())
				}
			}
			return nil
		},
	})
}

// TestAccDiskConversion_planFile: the engine's plan is written where
// plan_path says at plan time, as JSON with the facts the plan shows.
func TestAccDiskConversion_planFile(t *testing.T) {
	srcDir, outDir := t.TempDir(), t.TempDir()
	paths, err := testimg.VMDKChain(srcDir, "web", "monolithicSparse", 8*mib, baseLayer, snap1)
	if err != nil {
		t.Fatal(err)
	}
	out, planFile, mdPlan := filepath.Join(outDir, "web.qcow2"), filepath.Join(outDir, "web.plan.json"), filepath.Join(outDir, "web.plan.md")
	cfg := strings.Replace(conversionConfig(paths[0], out, ""), "source {", fmt.Sprintf("plan_path = %q\n  source {", planFile), 1)
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { acctest.PreCheck(t) },
		ProtoV6ProviderFactories: acctest.ProviderFactories,
		Steps: []resource.TestStep{{
			Config:             cfg,
			PlanOnly:           true,
			ExpectNonEmptyPlan: true,
		}, {
			PreConfig: func() {
				b, err := os.ReadFile(planFile)
				if err != nil {
					t.Fatalf("plan -out wrote no plan file: %v", err)
				}
				p, err := engine.ParsePlan(b)
				if err != nil {
					t.Fatal(err)
				}
				if p.Source.Format != "vmdk" || len(p.Source.Chain) != 2 || p.Output.Path != out || p.Output.EstimatedSize == 0 || len(p.Stages) != 6 {
					t.Errorf("plan file: %s", b)
				}
				if _, err := os.Stat(out); err == nil {
					t.Error("planning wrote the output")
				}
			},
			Config: cfg,
			Check: resource.TestCheckResourceAttrWith("vmconv_disk_conversion.web", "source_fingerprint", func(v string) error {
				b, _ := os.ReadFile(planFile)
				if !strings.Contains(string(b), v) {
					return fmt.Errorf("the plan file does not carry the applied fingerprint %s", v)
				}
				return nil
			}),
		}, {
			// A .md plan_path gets the plan as Markdown, for a pull
			// request; the JSON one is not written again.
			Config: strings.Replace(cfg, planFile, mdPlan, 1),
			Check: func(*terraform.State) error {
				b, err := os.ReadFile(mdPlan)
				if err != nil {
					return err
				}
				for _, want := range []string{"# vmconv plan: " + paths[0], "## Source", "- chain, newest first:\n  - `" + paths[0] + "`\n  - `" + paths[1] + "`",
					"8.0 MiB virtual", "## Output\n\n- `" + out + "`, qcow2", "- estimated size ", "## Stages", "- **CONVERT** (run)"} {
					if !strings.Contains(string(b), want) {
						return fmt.Errorf("the Markdown plan lacks %q:\n%s", want, b)
					}
				}
				if json.Valid(b) {
					return fmt.Errorf("the .md plan is JSON")
				}
				return nil
			},
		}},
	})
}
