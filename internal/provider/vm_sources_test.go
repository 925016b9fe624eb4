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

	"github.com/vmconv/terraform-provider-vmconv/internal/acctest"
	"github.com/vmconv/terraform-provider-vmconv/internal/sshdtest"
	"github.com/vmconv/terraform-provider-vmconv/internal/testimg"
	"github.com/vmconv/terraform-provider-vmconv/internal/vcsimtest"
)

// noSecretIn fails when a state attribute of the resource, or a file,
// holds secret.
func noSecretIn(name, secret string, files ...string) resource.TestCheckFunc {
	return func(st *terraform.State) error {
		for k, v := range st.RootModule().Resources[name].Primary.Attributes {
			if strings.Contains(v, secret) {
				return fmt.Errorf("state attribute %s holds the secret", k)
			}
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				return err
			}
			if strings.Contains(string(b), secret) {
				return fmt.Errorf("%s holds the secret", f)
			}
		}
		return nil
	}
}

// TestAccVMConversion_ovaAndDiskList converts two VMs in one
// configuration: one from a two-disk OVA whose descriptor lists the data
// disk first (every disk, in the order the VM attached them, and the OVF's
// hardware, known at plan), and one given disk by disk, a local snapshot
// chain then a disk on an HTTP server (planned from the server's metadata:
// the remote disk's chain and size are known after apply; hardware null).
// Both are re-planned as nothing to do, and the OVA is untouched.
func TestAccVMConversion_ovaAndDiskList(t *testing.T) {
	src, tmp := t.TempDir(), t.TempDir()
	boot, data := filepath.Join(tmp, "web-boot.vmdk"), filepath.Join(tmp, "web-data.vmdk")
	if err := testimg.StreamOptimized(boot, 8*mib, snap1); err != nil {
		t.Fatal(err)
	}
	if err := testimg.StreamOptimized(data, 8*mib, baseLayer); err != nil {
		t.Fatal(err)
	}
	ova := filepath.Join(src, "web.ova")
	if err := testimg.OVA(ova, "web", testimg.VMOVF("web", 2, 1024, []string{"web-data.vmdk", "web-boot.vmdk"}, []string{"scsi0:1", "scsi0:0"}, 8), data, boot); err != nil {
		t.Fatal(err)
	}
	chain, err := testimg.VMDKChain(src, "db", "monolithicSparse", 8*mib, baseLayer, snap1)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, data) }))
	defer srv.Close()
	before, err := acctest.DirSums(src)
	if err != nil {
		t.Fatal(err)
	}
	parent := t.TempDir()
	webDir, dbDir := filepath.Join(parent, "web"), filepath.Join(parent, "db")
	cfg := fmt.Sprintf(`
provider "vmconv" {
  cache_dir = %q
}

resource "vmconv_vm_conversion" "web" {
  source {
    ova { path = %q }
  }
  output { dir = %q }
%s}

resource "vmconv_vm_conversion" "db" {
  source {
    disks { path = %q }
    disks {
      url { href = %q }
    }
  }
  output { dir = %q }
%s}
`, t.TempDir(), ova, webDir, dataPlaneOnly, chain[0], srv.URL+"/data.vmdk", dbDir, dataPlaneOnly)
	const db = "vmconv_vm_conversion.db"
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { acctest.PreCheck(t) },
		ProtoV6ProviderFactories: acctest.ProviderFactories,
		Steps: []resource.TestStep{{
			Config: cfg,
			ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
				plancheck.ExpectKnownValue(vmName, tfjsonpath.New("hardware").AtMapKey("vcpus"), knownvalue.Int64Exact(2)),
				plancheck.ExpectKnownValue(vmName, tfjsonpath.New("hardware").AtMapKey("nics").AtSliceIndex(0).AtMapKey("mac"), knownvalue.StringExact("00:50:56:8a:3c:1e")),
				plancheck.ExpectKnownValue(vmName, tfjsonpath.New("disks").AtSliceIndex(1).AtMapKey("device"), knownvalue.StringExact("scsi0:1")),
				plancheck.ExpectKnownValue(db, tfjsonpath.New("hardware"), knownvalue.Null()),
				plancheck.ExpectKnownValue(db, tfjsonpath.New("disks").AtSliceIndex(0).AtMapKey("virtual_size"), knownvalue.Int64Exact(8*mib)),
				plancheck.ExpectUnknownValue(db, tfjsonpath.New("disks").AtSliceIndex(1).AtMapKey("virtual_size")),
				plancheck.ExpectKnownValue(db, tfjsonpath.New("disks").AtSliceIndex(1).AtMapKey("path"), knownvalue.StringExact(filepath.Join(dbDir, "db-disk1.qcow2"))),
			}},
			Check: resource.ComposeAggregateTestCheckFunc(
				checkVMImages(webDir, []*testimg.Expected{testimg.NewExpected(8*mib, snap1), testimg.NewExpected(8*mib, baseLayer)}),
				checkVMImagesOf(db, dbDir, "db", []*testimg.Expected{testimg.NewExpected(8*mib, baseLayer, snap1), testimg.NewExpected(8*mib, baseLayer)}),
				resource.TestCheckResourceAttr(db, "disks.1.virtual_size", fmt.Sprint(8*mib)),
				checkSourceUntouched(src, &before),
			),
		}},
	})
}

// TestAccVMConversion_vsphere converts a two-disk VM from govmomi's
// vCenter simulator on loopback: the plan knows its hardware and both
// disks (their sizes after apply), the apply copies both from one
// snapshot, and the password is nowhere in the state or the report.
func TestAccVMConversion_vsphere(t *testing.T) {
	s := vcsimtest.Start(t)
	vm := s.VM("DC0_H0_VM0")
	dsDir := filepath.Join(s.DatastoreDir("LocalDS_0"), "DC0_H0_VM0")
	if _, err := testimg.VMFSFlat(dsDir, "disk1", 0x1111, 8*mib, baseLayer); err != nil {
		t.Fatal(err)
	}
	if _, err := testimg.VMFSFlat(dsDir, "data", 0x3333, 8*mib, snap1); err != nil {
		t.Fatal(err)
	}
	vcsimtest.AddDisk(vm, "Hard disk 2", vcsimtest.SCSIKey(t, vm), 1, "[LocalDS_0] DC0_H0_VM0/data.vmdk", 8*mib)
	dir := filepath.Join(t.TempDir(), "web")
	cfg := vsphereProvider(t.TempDir()) + fmt.Sprintf(`

resource "vmconv_vm_conversion" "web" {
  source {
    vsphere {
      url        = %q
      datacenter = "DC0"
      vm         = "DC0_H0_VM0"
      thumbprint = %q
    }
  }
  output { dir = %q }
%s}
`, s.URL, s.Thumbprint, dir, dataPlaneOnly)
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { acctest.PreCheck(t) },
		ProtoV6ProviderFactories: acctest.ProviderFactories,
		Steps: []resource.TestStep{{
			Config: cfg,
			ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
				plancheck.ExpectKnownValue(vmName, tfjsonpath.New("hardware").AtMapKey("vcpus"), knownvalue.Int64Exact(int64(vm.Config.Hardware.NumCPU))),
				plancheck.ExpectKnownValue(vmName, tfjsonpath.New("hardware").AtMapKey("memory_mib"), knownvalue.Int64Exact(int64(vm.Config.Hardware.MemoryMB))),
				plancheck.ExpectKnownValue(vmName, tfjsonpath.New("disks").AtSliceIndex(1).AtMapKey("source_path"), knownvalue.StringExact("[LocalDS_0] DC0_H0_VM0/data.vmdk")),
				plancheck.ExpectUnknownValue(vmName, tfjsonpath.New("disks").AtSliceIndex(1).AtMapKey("chain")),
			}},
			Check: resource.ComposeAggregateTestCheckFunc(
				checkVMImagesOf(vmName, dir, "DC0_H0_VM0", []*testimg.Expected{testimg.NewExpected(8*mib, baseLayer), testimg.NewExpected(8*mib, snap1)}),
				noSecretIn(vmName, vcsimtest.Password, filepath.Join(dir, "vmconv-report.json")),
				func(*terraform.State) error {
					if vm.Snapshot != nil && len(vm.Snapshot.RootSnapshotList) != 0 {
						return fmt.Errorf("the snapshot was left behind")
					}
					return nil
				},
			),
		}},
	})
}

// TestAccVMConversion_esxiSSH converts a VM from its .vmx on a real sshd
// on loopback: the .vmx read over SFTP at plan (hardware and disks known),
// every disk it names copied at apply, its first disk an ESXi snapshot
// chain; the private key (write-only) is in neither the state nor the
// report.
func TestAccVMConversion_esxiSSH(t *testing.T) {
	s := sshdtest.Start(t)
	src := t.TempDir()
	os.Chmod(src, 0o755)
	if _, err := testimg.VMFSFlat(src, "web", 0x1111, 8*mib, baseLayer); err != nil {
		t.Fatal(err)
	}
	if _, err := testimg.VMFSSparse(src, "web-000001", "web.vmdk", 0x2222, 0x1111, 8*mib, 1, snap1); err != nil {
		t.Fatal(err)
	}
	if _, err := testimg.VMFSFlat(src, "web_1", 0x3333, 8*mib, baseLayer); err != nil {
		t.Fatal(err)
	}
	vmx := filepath.Join(src, "web.vmx")
	os.WriteFile(vmx, []byte(`.encoding = "UTF-8"
numvcpus = "4"
memSize = "4096"
scsi0.present = "TRUE"
scsi0.virtualDev = "pvscsi"
scsi0:0.present = "TRUE"
scsi0:0.fileName = "web-000001.vmdk"
scsi0:1.present = "TRUE"
scsi0:1.fileName = "web_1.vmdk"
ethernet0.present = "TRUE"
ethernet0.virtualDev = "vmxnet3"
ethernet0.addressType = "generated"
ethernet0.generatedAddress = "00:0c:29:12:34:56"
guestOS = "debian12-64"
`), 0o644)
	before, err := acctest.DirSums(src)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "web")
	cfg := fmt.Sprintf(`
provider "vmconv" {
  cache_dir = %q
}

resource "vmconv_vm_conversion" "web" {
  source {
    esxi_ssh {
      host        = %q
      user        = %q
      private_key = %q
      host_key    = %q
      path        = %q
    }
  }
  output { dir = %q }
%s}
`, t.TempDir(), s.Addr, s.User, s.PrivateKey, s.HostKey, vmx, dir, dataPlaneOnly)
	keyMarker := strings.Split(strings.TrimSpace(s.PrivateKey), "\n")[2]
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { acctest.PreCheck(t) },
		ProtoV6ProviderFactories: acctest.ProviderFactories,
		Steps: []resource.TestStep{{
			Config: cfg,
			ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
				plancheck.ExpectKnownValue(vmName, tfjsonpath.New("hardware").AtMapKey("vcpus"), knownvalue.Int64Exact(4)),
				plancheck.ExpectKnownValue(vmName, tfjsonpath.New("hardware").AtMapKey("nics").AtSliceIndex(0).AtMapKey("mac"), knownvalue.StringExact("00:0c:29:12:34:56")),
				plancheck.ExpectKnownValue(vmName, tfjsonpath.New("disks").AtSliceIndex(1).AtMapKey("device"), knownvalue.StringExact("scsi0:1")),
				plancheck.ExpectUnknownValue(vmName, tfjsonpath.New("disks").AtSliceIndex(0).AtMapKey("chain")),
			}},
			Check: resource.ComposeAggregateTestCheckFunc(
				checkVMImages(dir, []*testimg.Expected{testimg.NewExpected(8*mib, baseLayer, snap1), testimg.NewExpected(8*mib, baseLayer)}),
				resource.TestCheckResourceAttr(vmName, "disks.0.chain.#", "2"),
				resource.TestCheckNoResourceAttr(vmName, "source.esxi_ssh.private_key"),
				noSecretIn(vmName, keyMarker, filepath.Join(dir, "vmconv-report.json")),
				checkSourceUntouched(src, &before),
			),
		}, {
			// ESXi rewrites the .vmx (here, its vCPUs change): the disks
			// did not, so the images are kept and the hardware updated.
			PreConfig: func() {
				b, _ := os.ReadFile(vmx)
				os.WriteFile(vmx, []byte(strings.Replace(string(b), `numvcpus = "4"`, `numvcpus = "8"`, 1)), 0o644)
			},
			Config: cfg,
			ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
				plancheck.ExpectResourceAction(vmName, plancheck.ResourceActionUpdate),
				plancheck.ExpectKnownValue(vmName, tfjsonpath.New("hardware").AtMapKey("vcpus"), knownvalue.Int64Exact(8)),
			}},
		}},
	})
}
