package provider_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vmconv/terraform-provider-vmconv/internal/acctest"
	"github.com/vmconv/terraform-provider-vmconv/internal/vcsimtest"
)

// warmSource is a running VM of the simulator with one tracked flat disk.
type warmSource struct {
	s     *vcsimtest.Server
	vm    *simulator.VirtualMachine
	cbt   *vcsimtest.CBT
	key   int32
	cache string
}

func newWarmSource(t *testing.T) *warmSource {
	s := vcsimtest.Start(t)
	w := &warmSource{s: s, vm: s.VM("DC0_H0_VM0"), cbt: s.EnableCBT(), cache: t.TempDir()}
	w.key = w.cbt.FlatDisk(t, w.vm, 64*mib, baseLayer)
	return w
}

// write writes 4 KiB of b at off into the running VM's disk.
func (w *warmSource) write(t *testing.T, off int64, b byte) {
	f, err := os.OpenFile(w.cbt.LivePath(w.vm, w.key), os.O_WRONLY, 0)
	if err == nil {
		_, err = f.WriteAt(bytes.Repeat([]byte{b}, 4096), off)
		f.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
}

// config is the conversion with warm { <warm> }, or without the block
// when warm is "none".
func (w *warmSource) config(dir, warm string) string {
	block := "warm { " + warm + " }"
	if warm == "none" {
		block = ""
	}
	return vsphereProvider(w.cache) + fmt.Sprintf(`

resource "vmconv_vm_conversion" "web" {
  source {
    vsphere {
      url        = %q
      datacenter = "DC0"
      vm         = "DC0_H0_VM0"
      thumbprint = %q
      %s
    }
  }
  output {
    dir    = %q
    format = "raw"
  }
%s}
`, w.s.URL, w.s.Thumbprint, block, dir, dataPlaneOnly)
}

func (w *warmSource) staging() []string {
	m, _ := filepath.Glob(filepath.Join(w.cache, "warm", "*", "disk*.raw"))
	return m
}

// TestAccVMConversion_warm migrates a running VM warm through Terraform:
// the first apply copies it in full and writes nothing at the output;
// the next plans are updates in place that sync the changed areas (a
// reset of change tracking on the source makes one copy everything,
// which the plan says); the cutover shuts the VM down, syncs the last
// writes and publishes images equal to the disk at cutover, recording the
// downtime; the staging images are gone after it.
func TestAccVMConversion_warm(t *testing.T) {
	w := newWarmSource(t)
	dir := filepath.Join(t.TempDir(), "web")
	var atCutover []byte
	stageIs := func(re string) plancheck.PlanCheck {
		return plancheck.ExpectKnownValue(vmName, tfjsonpath.New("planned_stages").AtSliceIndex(0), knownvalue.StringRegexp(regexp.MustCompile(re)))
	}
	noOutput := func(*terraform.State) error {
		if _, err := os.Stat(dir); err == nil {
			return fmt.Errorf("a sync wrote at the output")
		}
		if w.vm.Runtime.PowerState != types.VirtualMachinePowerStatePoweredOn || w.vm.Snapshot != nil {
			return fmt.Errorf("after a sync the VM is %s with snapshots %+v", w.vm.Runtime.PowerState, w.vm.Snapshot)
		}
		if len(w.staging()) != 1 {
			return fmt.Errorf("staging images: %v", w.staging())
		}
		return nil
	}
	syncs := func(n int64) statecheck.StateCheck {
		return statecheck.ExpectKnownValue(vmName, tfjsonpath.New("warm").AtMapKey("syncs"), knownvalue.Int64Exact(n))
	}
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { acctest.PreCheck(t) },
		ProtoV6ProviderFactories: acctest.ProviderFactories,
		Steps: []resource.TestStep{{
			Config: w.config(dir, ""),
			ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
				plancheck.ExpectResourceAction(vmName, plancheck.ResourceActionCreate),
				stageIs(`^sync: enable changed block tracking .* copy every disk in full \(the first copy\)`),
				plancheck.ExpectKnownValue(vmName, tfjsonpath.New("disks"), knownvalue.ListSizeExact(0)),
			}},
			ConfigStateChecks: []statecheck.StateCheck{syncs(1),
				statecheck.ExpectKnownValue(vmName, tfjsonpath.New("warm").AtMapKey("cut_over"), knownvalue.Bool(false))},
			Check:              noOutput,
			ExpectNonEmptyPlan: true, // every plan before the cutover is the next sync
		}, {
			PreConfig: func() { w.write(t, 10*mib, 0xc1); w.write(t, 30*mib, 0xc2) },
			Config:    w.config(dir, ""),
			ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
				plancheck.ExpectResourceAction(vmName, plancheck.ResourceActionUpdate),
				stageIs(`^sync: copy the areas of every disk of VM "DC0_H0_VM0" changed since change ID\(s\) 52 [0-9a-f]+/1 \(sync 2,`),
			}},
			ConfigStateChecks:  []statecheck.StateCheck{syncs(2)},
			Check:              noOutput,
			ExpectNonEmptyPlan: true,
		}, {
			PreConfig: func() { w.cbt.Reset(w.vm); w.write(t, 50*mib, 0xc3) },
			Config:    w.config(dir, ""),
			ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
				stageIs(`copy every disk in full \(changed block tracking was reset on the source since the last sync`),
			}},
			ConfigStateChecks:  []statecheck.StateCheck{syncs(3)},
			Check:              noOutput,
			ExpectNonEmptyPlan: true,
		}, {
			PreConfig: func() {
				w.write(t, 20*mib, 0xc4) // the last write before the cutover
				b, err := os.ReadFile(w.cbt.LivePath(w.vm, w.key))
				if err != nil {
					t.Fatal(err)
				}
				atCutover = b
			},
			Config: w.config(dir, "cutover = true"),
			ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
				plancheck.ExpectResourceAction(vmName, plancheck.ResourceActionUpdate),
				plancheck.ExpectUnknownValue(vmName, tfjsonpath.New("warm")),
			}},
			ConfigStateChecks: []statecheck.StateCheck{syncs(4),
				statecheck.ExpectKnownValue(vmName, tfjsonpath.New("warm").AtMapKey("cut_over"), knownvalue.Bool(true)),
				statecheck.ExpectKnownValue(vmName, tfjsonpath.New("warm").AtMapKey("downtime"), knownvalue.StringRegexp(regexp.MustCompile(`^[0-9.]+(ms|s)$`))),
				statecheck.ExpectKnownValue(vmName, tfjsonpath.New("disks"), knownvalue.ListSizeExact(1)),
			},
			Check: func(*terraform.State) error {
				got, err := os.ReadFile(filepath.Join(dir, "DC0_H0_VM0-disk0.raw"))
				if err != nil {
					return err
				}
				if !bytes.Equal(got, atCutover) {
					return fmt.Errorf("the output is not the disk as it was at the cutover")
				}
				if w.vm.Runtime.PowerState != types.VirtualMachinePowerStatePoweredOff || w.vm.Snapshot != nil {
					return fmt.Errorf("after the cutover the VM is %s with snapshots %+v", w.vm.Runtime.PowerState, w.vm.Snapshot)
				}
				if s := w.staging(); len(s) != 0 {
					return fmt.Errorf("staging images outlived the cutover: %v", s)
				}
				return nil
			},
		}, {
			// Once cut over, the warm block may go: the VM is converted,
			// and nothing is replaced.
			Config: w.config(dir, "none"),
			ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
				plancheck.ExpectResourceAction(vmName, plancheck.ResourceActionUpdate),
			}},
			ConfigStateChecks: []statecheck.StateCheck{
				statecheck.ExpectKnownValue(vmName, tfjsonpath.New("warm").AtMapKey("cut_over"), knownvalue.Bool(true)),
			},
		}},
		CheckDestroy: func(*terraform.State) error {
			if _, err := os.Stat(dir); err == nil {
				return fmt.Errorf("destroy left the output")
			}
			return nil
		},
	})
}

// TestAccVMConversion_warmDestroyedBeforeCutover: a cutover into a folder
// holding someone's files is refused before the VM is shut down; a warm
// migration given up before its cutover leaves the VM running, untouched
// but for change tracking, and takes its staging images with it.
func TestAccVMConversion_warmDestroyedBeforeCutover(t *testing.T) {
	w := newWarmSource(t)
	dir := filepath.Join(t.TempDir(), "web")
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { acctest.PreCheck(t) },
		ProtoV6ProviderFactories: acctest.ProviderFactories,
		Steps: []resource.TestStep{{
			Config: w.config(dir, "cutover = false"),
			Check: func(*terraform.State) error {
				return map[bool]error{true: nil, false: fmt.Errorf("no staging image")}[len(w.staging()) == 1]
			},
			ExpectNonEmptyPlan: true,
		}, {
			// Someone's files appear in output.dir: the cutover is refused
			// by its plan, before the VM is shut down.
			PreConfig: func() {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o644); err != nil {
					t.Fatal(err)
				}
			},
			Config:      w.config(dir, "cutover = true"),
			ExpectError: regexp.MustCompile(`vmconv did not write`),
		}},
		CheckDestroy: func(*terraform.State) error {
			if s := w.staging(); len(s) != 0 {
				return fmt.Errorf("destroy left the staging images: %v", s)
			}
			if w.vm.Runtime.PowerState != types.VirtualMachinePowerStatePoweredOn || w.vm.Snapshot != nil {
				return fmt.Errorf("after the destroy the VM is %s with snapshots %+v", w.vm.Runtime.PowerState, w.vm.Snapshot)
			}
			if b, err := os.ReadFile(filepath.Join(dir, "notes.txt")); err != nil || string(b) != "mine" {
				return fmt.Errorf("the user's file in output.dir: %q, %v", b, err)
			}
			return nil
		},
	})
}

// TestAccCLI_warmResetWarns runs the plan after a reset of change tracking
// on the source through the terraform CLI, which shows the provider's
// warnings: the plan warns that the next sync copies everything, and
// why; a plan with tracking intact does not.
func TestAccCLI_warmResetWarns(t *testing.T) {
	acctest.PreCheck(t)
	w := newWarmSource(t)
	dir := filepath.Join(t.TempDir(), "web")
	cli := acctest.NewCLI(t)
	cli.Write("terraform {\n  required_providers {\n    vmconv = { source = \"vmconv/vmconv\" }\n  }\n}\n" + w.config(dir, ""))
	cli.MustRun("apply", "-auto-approve", "-input=false", "-no-color")
	const warning = "Warning: Warm Migration Copies Everything Again"
	w.write(t, 10*mib, 0xd1)
	if out, _ := cli.Run("plan", "-input=false", "-no-color"); strings.Contains(out, warning) || !strings.Contains(out, "changed since change ID") {
		t.Fatalf("the plan of an ordinary sync:\n%s", out)
	}
	w.cbt.Reset(w.vm)
	out, err := cli.Run("plan", "-input=false", "-no-color")
	if err != nil {
		t.Fatalf("plan after the reset: %v\n%s", err, out)
	}
	for _, want := range []string{warning, "changed block tracking was reset on the source since the last sync", "nothing is lost"} {
		if !strings.Contains(strings.Join(strings.Fields(out), " "), want) {
			t.Errorf("the plan after the reset does not say %q:\n%s", want, out)
		}
	}
	if _, err := os.Stat(dir); err == nil {
		t.Error("a sync wrote at the output")
	}
}
