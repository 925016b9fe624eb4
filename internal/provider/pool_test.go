package provider_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
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
	"github.com/vmconv/terraform-provider-vmconv/internal/libvirttest"
	"github.com/vmconv/terraform-provider-vmconv/internal/testimg"
)

// poolSource is a 256 MiB VMDK with 12 MiB of data.
func poolSource(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	raw := filepath.Join(dir, "db.raw")
	f, err := os.Create(raw)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(256 * mib)
	buf := make([]byte, 4*mib)
	for i := range buf {
		buf[i] = byte(i*31 + i/512)
	}
	for _, off := range []int64{0, 100 * mib, 200 * mib} {
		f.WriteAt(buf, off)
	}
	f.Close()
	img := filepath.Join(dir, "db.vmdk")
	if err := testimg.Run("qemu-img", "convert", "-f", "raw", "-O", "vmdk", raw, img); err != nil {
		t.Fatal(err)
	}
	os.Remove(raw)
	return img
}

func remoteProvider(uri, key, knownHosts string) string {
	return fmt.Sprintf(`
provider "vmconv" {
  uri                  = %s
  ssh_key_file         = %s
  ssh_known_hosts_file = %s
}
`, acctest.HCLString(uri), acctest.HCLString(key), acctest.HCLString(knownHosts))
}

func poolConfig(provider, src, pool, vol string) string {
	return provider + fmt.Sprintf(`
resource "vmconv_disk_conversion" "db" {
  source { path = %s }
  output {
    pool   = %s
    volume = %s
  }
%s}
`, acctest.HCLString(src), acctest.HCLString(pool), acctest.HCLString(vol), dataPlaneOnly)
}

// volumesOf is the pool's volume names, space-separated.
func volumesOf(t *testing.T, h *libvirttest.Host) string { return strings.Join(h.Volumes(t), " ") }

func TestAccDiskConversion_pool(t *testing.T) {
	h := libvirttest.Start(t)
	src, other := poolSource(t), poolSource(t)
	prov := remoteProvider(h.BareURI, h.KeyFile, h.KnownHosts)
	cfg := poolConfig(prov, src, h.Pool, "db.qcow2")
	name := "vmconv_disk_conversion.db"
	volPath := h.PoolPath + "/db.qcow2"
	checkVolume := func(s *terraform.State) error {
		if got := volumesOf(t, h); got != "db.qcow2 db.qcow2.vmconv.json db.qcow2.vmconv.md" {
			return fmt.Errorf("the pool holds %q", got)
		}
		if md, err := h.Exec(t, "cat", volPath+engine.VolumeMarkdownSuffix); err != nil || !strings.HasPrefix(string(md), "# vmconv: ") {
			return fmt.Errorf("the Markdown report volume: %v\n%s", err, md)
		}
		if out, err := h.Exec(t, "qemu-img", "compare", "-f", "vmdk", "-F", "qcow2", src, volPath); err != nil {
			return fmt.Errorf("the volume is not the source: %v %s", err, out)
		}
		h.RunnerViewUntouched(t)
		return nil
	}
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { acctest.PreCheck(t) },
		ProtoV6ProviderFactories: acctest.ProviderFactories,
		CheckDestroy: func(*terraform.State) error {
			if slices.Contains(h.Volumes(t), "db.qcow2"+engine.VolumeMarkdownSuffix) {
				return fmt.Errorf("destroy left the Markdown report volume")
			}
			if got := volumesOf(t, h); got != "" {
				return fmt.Errorf("destroy left %q in the pool", got)
			}
			return nil
		},
		Steps: []resource.TestStep{
			{
				Config: cfg,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(name, plancheck.ResourceActionCreate),
					plancheck.ExpectKnownValue(name, tfjsonpath.New("planned_stages"), knownvalue.ListExact([]knownvalue.Check{
						knownvalue.StringRegexp(regexp.MustCompile(`^flatten: `)),
						knownvalue.StringRegexp(regexp.MustCompile(`^convert: .*upload it \(holes kept\) to pool vmconv on qemu\+ssh://root@127\.0\.0\.1:\d+/system as volume db\.qcow2`)),
					})),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(name, tfjsonpath.New("id"), knownvalue.StringExact("volume:vmconv/db.qcow2")),
					statecheck.ExpectKnownValue(name, tfjsonpath.New("report_path"), knownvalue.StringExact("volume:vmconv/db.qcow2.vmconv.json")),
				},
				Check: checkVolume,
			},
			{Config: cfg, PlanOnly: true},
			{
				// A guest wrote through the volume out of band: replaced.
				PreConfig: func() {
					if out, err := h.Exec(t, "qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 250M 64k", volPath); err != nil {
						t.Fatalf("%v %s", err, out)
					}
				},
				Config: cfg,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(name, plancheck.ResourceActionDestroyBeforeCreate),
				}},
				Check: checkVolume,
			},
			{
				// Deleted out of band: recreated.
				PreConfig: func() { h.Virsh(t, "vol-delete", "--pool", h.Pool, "db.qcow2") },
				Config:    cfg,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(name, plancheck.ResourceActionCreate),
				}},
				Check: checkVolume,
			},
			{
				ResourceName: name, ImportState: true, ImportStateId: "volume:vmconv/db.qcow2",
				ImportStateVerify: true, ImportStateVerifyIgnore: []string{"timeouts"},
			},
			{
				// Another conversion may not take a volume vmconv published.
				Config:      cfg + strings.Replace(poolConfig("", other, h.Pool, "db.qcow2"), `"db"`, `"other"`, 1),
				ExpectError: regexp.MustCompile(`(?s)Output File Already Exists.*volume db\.qcow2 already exists in pool vmconv`),
			},
		},
	})
}

// TestAccDiskConversion_poolHostChecks: a host that cannot be reached, or
// whose key is not the pinned one, fails the plan with the URI and what to
// check; nothing is written.
func TestAccDiskConversion_poolHostChecks(t *testing.T) {
	h := libvirttest.Start(t)
	src := poolSource(t)
	unreachable := libvirttest.UnreachableURI(t)
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { acctest.PreCheck(t) },
		ProtoV6ProviderFactories: acctest.ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config:      poolConfig(remoteProvider(unreachable, h.KeyFile, h.KnownHosts), src, h.Pool, "db.qcow2"),
				ExpectError: regexp.MustCompile(`(?s)cannot connect to libvirt at\s+qemu\+ssh://root@127\.0\.0\.1:\d+/system.*Connection refused.*host is up`),
			},
			{
				Config:      poolConfig(remoteProvider(h.BareURI, h.KeyFile, h.WrongKnownHosts), src, h.Pool, "db.qcow2"),
				ExpectError: regexp.MustCompile(`(?s)the host key of\s+qemu\+ssh://root@127\.0\.0\.1:\d+/system is not the one in`),
			},
			{
				Config:      poolConfig(remoteProvider(h.BareURI, h.KeyFile, h.KnownHosts), src, "nosuchpool", "db.qcow2"),
				ExpectError: regexp.MustCompile(`(?s)Storage Pool Not Usable.*pool-define-as`),
			},
		},
	})
	if got := volumesOf(t, h); got != "" {
		t.Errorf("failed plans wrote %q", got)
	}
	h.RunnerViewUntouched(t)
}

// TestAccVMConversion_pool: a whole VM (two disks, from its .vmx) into a
// pool of the remote host: one volume per disk and one report, what a
// domain's disks take from disks[*].pool and .volume; a hardware change
// recorded in the report volume; drift, import and destroy through libvirt.
func TestAccVMConversion_pool(t *testing.T) {
	h := libvirttest.Start(t)
	vm, err := testimg.TwoDiskVM(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg := remoteProvider(h.BareURI, h.KeyFile, h.KnownHosts) + fmt.Sprintf(`
resource "vmconv_vm_conversion" "db" {
  source { vmx = %s }
  output {
    pool   = %s
    volume = "db"
  }
%s}
`, acctest.HCLString(vm.VMX), acctest.HCLString(h.Pool), dataPlaneOnly)
	const db = "vmconv_vm_conversion.db"
	checkVolumes := func(*terraform.State) error {
		if got := volumesOf(t, h); got != "db-disk0.qcow2 db-disk1.qcow2 db.vmconv.json db.vmconv.md" {
			return fmt.Errorf("the pool holds %q", got)
		}
		for i, want := range vm.Want {
			out, err := h.Exec(t, "cat", fmt.Sprintf("%s/db-disk%d.qcow2", h.PoolPath, i))
			if err != nil {
				return err
			}
			local := filepath.Join(t.TempDir(), "disk.qcow2")
			os.WriteFile(local, out, 0o644)
			data, err := testimg.ReadQcow2(local)
			if err != nil {
				return err
			}
			if err := want.Compare(data); err != nil {
				return fmt.Errorf("disk %d: %v", i, err)
			}
		}
		h.RunnerViewUntouched(t)
		return nil
	}
	reportMemory := func(mib int) resource.TestCheckFunc {
		return func(*terraform.State) error {
			b, err := h.Exec(t, "cat", h.PoolPath+"/db.vmconv.json")
			if err != nil {
				return err
			}
			var rep engine.Report
			if err := json.Unmarshal(b, &rep); err != nil || rep.Plan.Hardware == nil || rep.Plan.Hardware.MemoryMiB != mib {
				return fmt.Errorf("the report volume's hardware: %v %+v", err, rep.Plan)
			}
			// The Markdown volume is rewritten with it.
			md, err := h.Exec(t, "cat", h.PoolPath+"/db.vmconv.md")
			if want := fmt.Sprintf("%.1f GiB memory", float64(mib)/1024); err != nil || !strings.HasPrefix(string(md), "# vmconv: ") || !strings.Contains(string(md), want) {
				return fmt.Errorf("the Markdown report volume does not say %q: %v\n%s", want, err, md)
			}
			return nil
		}
	}
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { acctest.PreCheck(t) },
		ProtoV6ProviderFactories: acctest.ProviderFactories,
		CheckDestroy: func(*terraform.State) error {
			if got := volumesOf(t, h); got != "" {
				return fmt.Errorf("destroy left %q in the pool", got)
			}
			return nil
		},
		Steps: []resource.TestStep{
			{
				Config: cfg,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectKnownValue(db, tfjsonpath.New("disks").AtSliceIndex(1).AtMapKey("volume"), knownvalue.StringExact("db-disk1.qcow2")),
					plancheck.ExpectKnownValue(db, tfjsonpath.New("disks").AtSliceIndex(1).AtMapKey("pool"), knownvalue.StringExact("vmconv")),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(db, tfjsonpath.New("id"), knownvalue.StringExact("volume:vmconv/db")),
					statecheck.ExpectKnownValue(db, tfjsonpath.New("disks").AtSliceIndex(0).AtMapKey("path"), knownvalue.StringExact(h.PoolPath+"/db-disk0.qcow2")),
				},
				Check: resource.ComposeAggregateTestCheckFunc(checkVolumes, reportMemory(1024)),
			},
			{Config: cfg, PlanOnly: true},
			{
				// The VM's memory changed in its .vmx: an update in place,
				// recorded in the report volume; the disks stay.
				PreConfig: func() {
					b, _ := os.ReadFile(vm.VMX)
					os.WriteFile(vm.VMX, []byte(strings.Replace(string(b), `memSize = "1024"`, `memSize = "2048"`, 1)), 0o644)
				},
				Config: cfg,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(db, plancheck.ResourceActionUpdate),
				}},
				Check: resource.ComposeAggregateTestCheckFunc(checkVolumes, reportMemory(2048),
					resource.TestCheckResourceAttr(db, "hardware.memory_mib", "2048")),
			},
			{
				// One disk deleted out of band: the VM is converted again.
				PreConfig: func() { h.Virsh(t, "vol-delete", "--pool", h.Pool, "db-disk1.qcow2") },
				Config:    cfg,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(db, plancheck.ResourceActionDestroyBeforeCreate),
				}},
				Check: checkVolumes,
			},
			{
				ResourceName: db, ImportState: true, ImportStateId: "volume:vmconv/db",
				ImportStateVerify: true, ImportStateVerifyIgnore: []string{"timeouts"},
			},
		},
	})
}
