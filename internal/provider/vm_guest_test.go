package provider_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmconv/terraform-provider-vmconv/internal/acctest"
	"github.com/vmconv/terraform-provider-vmconv/internal/testimg"
)

// guestOVA exports the two-disk fixture VM as vSphere would: an OVA with
// each disk streamOptimized, the OVF attaching them at scsi0:0 and scsi0:1.
func guestOVA(t *testing.T, fx *acctest.Fixtures) string {
	t.Helper()
	tmp := t.TempDir()
	var files []string
	for i, d := range fx.VM.Disks {
		f := filepath.Join(tmp, fmt.Sprintf("web-disk%d.vmdk", i+1))
		if err := testimg.Run("qemu-img", "convert", "-q", "-O", "vmdk", "-o", "subformat=streamOptimized", fx.Path(d), f); err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	ova := filepath.Join(t.TempDir(), "web.ova")
	ovf := testimg.VMOVF("web", 2, 1024, []string{"web-disk1.vmdk", "web-disk2.vmdk"}, []string{"scsi0:0", "scsi0:1"}, 4096)
	if err := testimg.OVA(ova, "web", ovf, files...); err != nil {
		t.Fatal(err)
	}
	return ova
}

// TestAccCLI_guestOVAVM plans the real two-disk guest (/srv and swap on
// its second disk by /dev/sdb names) exported as an OVA, with the
// terraform CLI as a user runs it (plan -out, show -json). Its boot disk
// converted alone is the negative: the plan finds /dev/sdb1 on no disk it
// has and refuses, since the guest would stop in emergency mode. As one
// VM, the plan inspects the guest across both disks and shows the fstab
// fix mounting /srv by the second disk's UUID, with the OVF's hardware.
// (The same guest's virtio boot is TestGuestVMTwoDisks'.)
func TestAccCLI_guestOVAVM(t *testing.T) {
	acctest.PreCheck(t)
	if os.Getenv("TF_ACC") == "" {
		t.Skip("TF_ACC not set")
	}
	fx := acctest.GuestFixtures(t)
	ova := guestOVA(t, fx)
	before, err := acctest.DirSums(filepath.Dir(ova))
	if err != nil {
		t.Fatal(err)
	}
	const header = `
terraform {
  required_providers {
    vmconv = { source = "vmconv/vmconv" }
  }
}
`
	cache := "VMCONV_CACHE_DIR=" + t.TempDir()
	alone := acctest.NewCLI(t, cache)
	alone.Write(header + fmt.Sprintf(`
resource "vmconv_disk_conversion" "boot" {
  source {
    ova {
      path = %q
      disk = 0
    }
  }
  output { path = %q }
}
`, ova, filepath.Join(t.TempDir(), "boot.qcow2")))
	out, err := alone.Run("plan", "-input=false", "-no-color")
	flat := strings.Join(strings.Fields(out), " ")
	if err == nil || !strings.Contains(flat, "/dev/sdb1") {
		t.Fatalf("the boot disk alone planned without naming /dev/sdb1 (err %v):\n%s", err, out)
	}

	vm := acctest.NewCLI(t, cache)
	dir := filepath.Join(t.TempDir(), "web")
	vm.Write(header + fmt.Sprintf(`
resource "vmconv_vm_conversion" "web" {
  source {
    ova { path = %q }
  }
  output { dir = %q }
}
`, ova, dir))
	vm.MustRun("plan", "-input=false", "-out=tfplan")
	var plan struct {
		ResourceChanges []struct {
			Change struct {
				After struct {
					Hardware struct {
						VCPUs int `json:"vcpus"`
					} `json:"hardware"`
					Disks []struct {
						Device string `json:"device"`
					} `json:"disks"`
					PlannedFixes []struct {
						Fix, Path, Reason string
					} `json:"planned_fixes"`
				} `json:"after"`
			} `json:"change"`
		} `json:"resource_changes"`
	}
	if err := json.Unmarshal([]byte(vm.MustRun("show", "-json", "tfplan")), &plan); err != nil || len(plan.ResourceChanges) != 1 {
		t.Fatalf("plan JSON: %v", err)
	}
	after := plan.ResourceChanges[0].Change.After
	if after.Hardware.VCPUs != 2 || len(after.Disks) != 2 || after.Disks[1].Device != "scsi0:1" {
		t.Errorf("planned hardware %+v, disks %+v", after.Hardware, after.Disks)
	}
	found := false
	for _, f := range after.PlannedFixes {
		found = found || (f.Path == "/etc/fstab" && strings.Contains(f.Reason, "/dev/sdb1 -> UUID="+fx.VM.SrvUUID))
	}
	if !found {
		t.Errorf("no planned fstab fix mounts /srv by %s: %+v", fx.VM.SrvUUID, after.PlannedFixes)
	}
	if now, _ := acctest.DirSums(filepath.Dir(ova)); now != before {
		t.Error("the OVA changed")
	}
	if _, err := os.Stat(dir); err == nil {
		t.Error("the plan wrote the output folder")
	}
}
