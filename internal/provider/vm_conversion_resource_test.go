package provider_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
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

const vmName = "vmconv_vm_conversion.web"

// vmConfig converts the VM at vmx into dir, with the guest work off: the
// disks hold patterns, not an operating system.
func vmConfig(vmx, dir, extraOutput string) string {
	return fmt.Sprintf(`
resource "vmconv_vm_conversion" "web" {
  source { vmx = %s }
  output {
    dir = %s
    %s
  }
%s}
`, acctest.HCLString(vmx), acctest.HCLString(dir), extraOutput, dataPlaneOnly)
}

// checkVMImages reads each image of the VM in Go and compares it with its
// chain's content, checks its recorded sha256 is the file's, and that the
// folder holds the images, the report and the set's manifest, nothing else.
func checkVMImages(dir string, want []*testimg.Expected) resource.TestCheckFunc {
	return checkVMImagesOf(vmName, dir, "web", want)
}

// checkVMImagesOf is checkVMImages for the resource name, whose images are
// stem-disk<i>.qcow2.
func checkVMImagesOf(name, dir, stem string, want []*testimg.Expected) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		rs := s.RootModule().Resources[name]
		if rs == nil {
			return fmt.Errorf("resource not in state")
		}
		a := rs.Primary.Attributes
		if a["disks.#"] != fmt.Sprint(len(want)) {
			return fmt.Errorf("%s disks in state, want %d", a["disks.#"], len(want))
		}
		names := []string{".vmconv-set.json", engine.VMReportName, engine.VMMarkdownName}
		for i, w := range want {
			p := filepath.Join(dir, fmt.Sprintf("%s-disk%d.qcow2", stem, i))
			if got := a[fmt.Sprintf("disks.%d.path", i)]; got != p {
				return fmt.Errorf("disk %d path %s, want %s", i, got, p)
			}
			sum, err := acctest.SHA256File(p)
			if err != nil {
				return err
			}
			if got := a[fmt.Sprintf("disks.%d.sha256", i)]; got != sum {
				return fmt.Errorf("disk %d sha256 %s, the file has %s", i, got, sum)
			}
			data, err := testimg.ReadQcow2(p)
			if err != nil {
				return err
			}
			if err := w.Compare(data); err != nil {
				return fmt.Errorf("disk %d: %v", i, err)
			}
			names = append(names, filepath.Base(p))
		}
		es, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		var got []string
		for _, e := range es {
			got = append(got, e.Name())
		}
		if slices.Sort(names); !slices.Equal(got, names) {
			return fmt.Errorf("the folder holds %v, want %v", got, names)
		}
		return nil
	}
}

// TestAccVMConversion_lifecycle: a two-disk .vmx folder is planned with
// its disks, their images and the hardware known before a byte moves;
// applied into one folder whose images hold each chain's bytes; re-planned
// as nothing to do; replaced when an image is modified, recreated when the
// folder is deleted; imported from its report; and destroyed with nothing
// left beside the folder. The source is never modified.
func TestAccVMConversion_lifecycle(t *testing.T) {
	vm, err := testimg.TwoDiskVM(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	parent := t.TempDir()
	dir := filepath.Join(parent, "web")
	before, err := acctest.DirSums(vm.Dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg := vmConfig(vm.VMX, dir, "")
	disk := func(i int) knownvalue.Check {
		return knownvalue.ObjectPartial(map[string]knownvalue.Check{
			"device":         knownvalue.StringExact(fmt.Sprintf("scsi0:%d", i)),
			"path":           knownvalue.StringExact(filepath.Join(dir, fmt.Sprintf("web-disk%d.qcow2", i))),
			"format":         knownvalue.StringExact("qcow2"),
			"source_path":    knownvalue.StringExact(realPath(vm.Heads[i])),
			"virtual_size":   knownvalue.Int64Exact(8 * mib),
			"estimated_size": knownvalue.NotNull(),
		})
	}
	hardware := func(memory int64) knownvalue.Check {
		return knownvalue.ObjectExact(map[string]knownvalue.Check{
			"vcpus": knownvalue.Int64Exact(2), "memory_mib": knownvalue.Int64Exact(memory), "firmware": knownvalue.StringExact("bios"),
			"guest_os": knownvalue.StringExact(""), "skipped": knownvalue.ListSizeExact(0),
			"nics": knownvalue.ListExact([]knownvalue.Check{knownvalue.ObjectExact(map[string]knownvalue.Check{
				"mac": knownvalue.StringExact("00:0c:29:aa:bb:cc"), "model": knownvalue.StringExact("vmxnet3"), "network": knownvalue.StringExact(""),
			})}),
		})
	}
	tamper := func(p string) func() {
		return func() {
			f, err := os.OpenFile(p, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteAt([]byte("tampered"), 0)
			f.Close()
		}
	}

	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { acctest.PreCheck(t) },
		ProtoV6ProviderFactories: acctest.ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config: cfg,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(vmName, plancheck.ResourceActionCreate),
					// Known before a byte moves.
					plancheck.ExpectKnownValue(vmName, tfjsonpath.New("disks"), knownvalue.ListExact([]knownvalue.Check{disk(0), disk(1)})),
					plancheck.ExpectKnownValue(vmName, tfjsonpath.New("disks").AtSliceIndex(0).AtMapKey("chain"), knownvalue.ListSizeExact(2)),
					plancheck.ExpectUnknownValue(vmName, tfjsonpath.New("disks").AtSliceIndex(1).AtMapKey("sha256")),
					plancheck.ExpectKnownValue(vmName, tfjsonpath.New("hardware"), hardware(1024)),
					plancheck.ExpectKnownValue(vmName, tfjsonpath.New("id"), knownvalue.StringExact(dir)),
					plancheck.ExpectKnownValue(vmName, tfjsonpath.New("planned_stages"), knownvalue.ListExact([]knownvalue.Check{
						knownvalue.StringRegexp(regexpMust(`^flatten: 2 disk\(s\), 3 layer\(s\)`)),
						knownvalue.StringRegexp(regexpMust(`^convert: write 2 qcow2 image\(s\) into `)),
					})),
					// Fixes and boot test are off: nothing to inspect.
					plancheck.ExpectKnownValue(vmName, tfjsonpath.New("planned_fixes"), knownvalue.Null()),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(vmName, tfjsonpath.New("report_path"), knownvalue.StringExact(filepath.Join(dir, engine.VMReportName))),
					statecheck.ExpectKnownValue(vmName, tfjsonpath.New("source_fingerprint"), knownvalue.StringRegexp(regexpMust(`^v1:[0-9a-f]{64}$`))),
					statecheck.ExpectKnownValue(vmName, tfjsonpath.New("guest"), knownvalue.Null()),
				},
				Check: resource.ComposeAggregateTestCheckFunc(checkVMImages(dir, vm.Want), checkSourceUntouched(vm.Dir, &before)),
			},
			{
				// Nothing changed: refresh and plan show no drift.
				Config: cfg, PlanOnly: true,
			},
			{
				// An image was modified in place: the VM is converted again.
				PreConfig: tamper(filepath.Join(dir, "web-disk1.qcow2")),
				Config:    cfg,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(vmName, plancheck.ResourceActionDestroyBeforeCreate),
				}},
				Check: resource.ComposeAggregateTestCheckFunc(checkVMImages(dir, vm.Want), checkSourceUntouched(vm.Dir, &before)),
			},
			{
				// The folder was deleted outside Terraform: recreated.
				PreConfig: func() { os.RemoveAll(dir) },
				Config:    cfg,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(vmName, plancheck.ResourceActionCreate),
				}},
				Check: checkVMImages(dir, vm.Want),
			},
			{
				ResourceName: vmName, ImportState: true, ImportStateId: dir,
				ImportStateVerify: true, ImportStateVerifyIgnore: []string{"timeouts"},
			},
			{
				// The .vmx's memory changed, the disks did not: the
				// hardware is updated in place and the images kept.
				PreConfig: func() {
					b, _ := os.ReadFile(vm.VMX)
					os.WriteFile(vm.VMX, []byte(strings.Replace(string(b), `memSize = "1024"`, `memSize = "2048"`, 1)), 0o644)
					before, _ = acctest.DirSums(vm.Dir)
				},
				Config: cfg,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(vmName, plancheck.ResourceActionUpdate),
					plancheck.ExpectKnownValue(vmName, tfjsonpath.New("hardware"), hardware(2048)),
				}},
				Check: resource.ComposeAggregateTestCheckFunc(checkVMImages(dir, vm.Want), checkSourceUntouched(vm.Dir, &before),
					func(*terraform.State) error {
						rep, err := engine.ReadVMReport(dir)
						if err != nil || rep.Plan.Hardware == nil || rep.Plan.Hardware.MemoryMiB != 2048 {
							return fmt.Errorf("the report's hardware after the update: %v, %+v", err, rep)
						}
						// The Markdown report is rewritten with it.
						md, err := os.ReadFile(filepath.Join(dir, engine.VMMarkdownName))
						if err != nil || !strings.Contains(string(md), "2.0 GiB memory") {
							return fmt.Errorf("the Markdown report after the update (%v):\n%s", err, md)
						}
						return nil
					}),
			},
			{
				// The boot test is turned on: an update in place that boots
				// the published VM again (this one holds no operating
				// system, so there is nothing to boot), the images kept.
				Config: noPreview + strings.Replace(cfg, "boot_test { enabled = false }", "boot_test { enabled = true }", 1),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(vmName, plancheck.ResourceActionUpdate),
					plancheck.ExpectUnknownValue(vmName, tfjsonpath.New("boot_test_result")),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(vmName, tfjsonpath.New("boot_test_result"), knownvalue.Null()),
				},
				Check: resource.ComposeAggregateTestCheckFunc(checkVMImages(dir, vm.Want), checkSourceUntouched(vm.Dir, &before)),
			},
		},
		CheckDestroy: func(*terraform.State) error {
			// The folder, and the lock file destroy took beside it.
			if es, _ := os.ReadDir(parent); len(es) > 0 {
				return fmt.Errorf("after destroy the parent folder holds %v", es)
			}
			return nil
		},
	})
}

// TestAccVMConversion_diskOutsideFolder: a .vmx naming a disk outside its
// folder fails the plan with a diagnostic naming the disk and the .vmx,
// and nothing is written.
func TestAccVMConversion_diskOutsideFolder(t *testing.T) {
	root := t.TempDir()
	src, other := filepath.Join(root, "vm"), filepath.Join(root, "other")
	os.Mkdir(src, 0o755)
	os.Mkdir(other, 0o755)
	vm, err := testimg.TwoDiskVM(src)
	if err != nil {
		t.Fatal(err)
	}
	// The data disk moves out of the VM's folder, and the .vmx follows it.
	if _, err := testimg.VMDKChain(other, "data", "monolithicSparse", 8*mib, baseLayer); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(vm.VMX)
	os.WriteFile(vm.VMX, []byte(strings.Replace(string(b), `scsi0:1.fileName = "data.vmdk"`, `scsi0:1.fileName = "../other/data.vmdk"`, 1)), 0o644)
	before, err := acctest.DirSums(root)
	if err != nil {
		t.Fatal(err)
	}
	parent := t.TempDir()
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { acctest.PreCheck(t) },
		ProtoV6ProviderFactories: acctest.ProviderFactories,
		Steps: []resource.TestStep{{
			Config:      vmConfig(vm.VMX, filepath.Join(parent, "web"), ""),
			ExpectError: wrapTolerant(`(?s)Disk References A File Outside The Source Folder.*disk scsi0:1 lies outside the VM's folder.*\.\./other/data\.vmdk.*File: .*web\.vmx`),
		}},
	})
	if es, _ := os.ReadDir(parent); len(es) > 0 {
		t.Errorf("a refused plan wrote %v", es)
	}
	if now, _ := acctest.DirSums(root); now != before {
		t.Errorf("the source changed:\n%s\n%s", before, now)
	}
}

// realPath is p with its links resolved, as the engine names files.
func realPath(p string) string {
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	return p
}
