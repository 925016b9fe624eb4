package provider_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vmconv/terraform-provider-vmconv/engine"
	"github.com/vmconv/terraform-provider-vmconv/internal/acctest"
	"github.com/vmconv/terraform-provider-vmconv/internal/testimg"
)

// TestAccVMConversion_killedApplyConverges SIGKILLs the provider while a
// two-disk VM is being published: with its images and report written into
// the set's temporary folder but not published, and once the folder is in
// place but before Terraform records the state (both held by the engine's
// test seam, VMCONV_TEST_HOLD). After each kill the output folder holds
// the whole VM its report describes, or nothing; the re-apply converges
// (a VM published before the kill is adopted, not converted again), the
// next plan is empty, and nothing but the folder is left beside it.
func TestAccVMConversion_killedApplyConverges(t *testing.T) {
	acctest.PreCheck(t)
	if os.Getenv("TF_ACC") == "" {
		t.Skip("TF_ACC not set")
	}
	vm, err := testimg.TwoDiskVM(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, point := range []string{"before-publish-rename", "after-publish-rename"} {
		t.Run(point, func(t *testing.T) {
			parent, work := t.TempDir(), t.TempDir()
			dir := filepath.Join(parent, "web")
			cli := acctest.NewCLI(t, "VMCONV_CACHE_DIR="+t.TempDir(), "VMCONV_WORK_DIR="+work)
			cli.Write(fmt.Sprintf(`
terraform {
  required_providers {
    vmconv = { source = "vmconv/vmconv" }
  }
}
resource "vmconv_vm_conversion" "web" {
  source { vmx = %q }
  output { dir = %q }
  fixes { enabled = false }
  boot_test { enabled = false }
}
`, vm.VMX, dir))
			env := cli.Env
			cli.Env = append(slices.Clip(env), engine.TestHoldEnv+"="+point)
			run := cli.Start("apply", "-auto-approve", "-input=false", "-no-color")
			cli.Env = env
			reached := func() bool {
				if point == "after-publish-rename" {
					return exists(filepath.Join(dir, engine.VMReportName))
				}
				ms, _ := filepath.Glob(filepath.Join(parent, ".web.tmp-*", engine.VMReportName))
				return len(ms) > 0
			}
			for deadline := time.Now().Add(2 * time.Minute); !reached(); time.Sleep(10 * time.Millisecond) {
				if run.Exited() || time.Now().After(deadline) {
					t.Fatalf("the apply never reached %s:\n%s", point, run.Output())
				}
			}
			provider := -1
			for _, p := range acctest.Descendants(run.Cmd.Process.Pid) {
				if strings.HasPrefix(p.Comm, "terraform-provi") {
					provider = p.Pid
				}
			}
			if provider < 0 {
				t.Fatal("no provider process under terraform")
			}
			acctest.Kill(t, provider)
			run.Wait()

			// The whole VM its report describes, or nothing.
			if exists(dir) {
				rep, err := engine.ReadVMReport(dir)
				if err != nil {
					t.Fatalf("a folder without its report after the kill: %v", err)
				}
				for _, d := range rep.Result.Disks {
					if got := sha256Of(t, d.Path); got != d.SHA256 {
						t.Fatalf("%s is not the image its report describes", d.Path)
					}
				}
			} else if point == "after-publish-rename" {
				t.Fatal("the folder published before the kill is gone")
			}

			got := cli.MustRun("apply", "-auto-approve", "-input=false", "-no-color")
			if adopted := strings.Contains(got, "Output Of An Interrupted Apply Adopted"); adopted != (point == "after-publish-rename") {
				t.Errorf("adopted = %v after a kill %s:\n%s", adopted, point, got)
			}
			if _, err := cli.Run("plan", "-detailed-exitcode", "-input=false", "-no-color"); err != nil {
				plan, _ := cli.Run("plan", "-input=false", "-no-color")
				t.Fatalf("the plan after the re-apply is not empty (%v):\n%s", err, plan)
			}
			for i, want := range vm.Want {
				data, err := testimg.ReadQcow2(filepath.Join(dir, fmt.Sprintf("web-disk%d.qcow2", i)))
				if err != nil {
					t.Fatal(err)
				}
				if err := want.Compare(data); err != nil {
					t.Errorf("disk %d: %v", i, err)
				}
			}
			if es, _ := os.ReadDir(parent); len(es) != 1 {
				var names []string
				for _, e := range es {
					names = append(names, e.Name())
				}
				t.Errorf("beside the VM's folder after the re-apply: %q", names)
			}
			if scratch, _ := os.ReadDir(work); len(scratch) > 0 {
				t.Errorf("left in the work folder after the re-apply: %v", scratch)
			}
		})
	}
}
