package provider_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/vmconv/terraform-provider-vmconv/engine"
	"github.com/vmconv/terraform-provider-vmconv/engine/boottest"
	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/internal/acctest"
	"github.com/vmconv/terraform-provider-vmconv/internal/libvirttest"
)

// TestAccKVMDomain_remote is issue 13's end to end: the fixture guest is
// converted (fixed, not booted here) into a storage pool of a libvirt host
// reached over qemu+ssh, whose pool the runner cannot see, and boots there
// as a vmconv_kvm_domain whose boot test reads the serial console through
// libvirt, in two phases (SATA, then virtio) as a Windows migration would.
// The volume is held while the domain uses it, the domain imports, and
// destroy shuts it down gracefully and leaves the pool empty. The guest is
// the variant whose serial console was configured before vmconv saw it
// (GRUB on the serial terminal, console=ttyS0 on every kernel line), which
// the boot test once refused: it takes over that guest's boot from the
// former TestAccGuest_serialConsole (the instrument step on the variant's
// own grub.cfg is engine/boottest's TestInstrumentSerialFixture).
func TestAccKVMDomain_remote(t *testing.T) {
	t.Parallel()
	fx := acctest.GuestFixtures(t)
	h := libvirttest.Start(t)
	name := testDomainName("remote")
	// No plan-time inspection: the apply inspects anyway, and under
	// emulation each appliance launch costs a minute.
	domains := t.TempDir()
	cfg := strings.Replace(remoteProvider(h.BareURI, h.KeyFile, h.KnownHosts), "provider \"vmconv\" {",
		fmt.Sprintf("provider \"vmconv\" {\n  plan_inspection = false\n  domain_dir = %s", acctest.HCLString(domains)), 1) + fmt.Sprintf(`
resource "vmconv_disk_conversion" "guest" {
  source { path = %s }
  output {
    pool   = %q
    volume = "guest.qcow2"
  }
  boot_test { enabled = false }
}

resource "vmconv_kvm_domain" "web" {
  name = %q
  disks {
    pool   = vmconv_disk_conversion.guest.output.pool
    volume = vmconv_disk_conversion.guest.output.volume
  }
  network_interfaces { user = true }
  initial_boot_bus = "sata"
  boot_test { timeout = "25m" }
  shutdown_timeout = "2m"
}
`, acctest.HCLString(fx.Path(fx.Variants["serial"].Disk)), h.Pool, name)
	const web = "vmconv_kvm_domain.web"
	overlay := name + "-overlay0.qcow2"
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { acctest.PreCheck(t) },
		ProtoV6ProviderFactories: acctest.ProviderFactories,
		CheckDestroy: func(*terraform.State) error {
			if got := volumesOf(t, h); got != "" {
				return fmt.Errorf("destroy left %q in the pool", got)
			}
			if got := strings.TrimSpace(h.Virsh(t, "list", "--all", "--name")); got != "" {
				return fmt.Errorf("destroy left domains %q", got)
			}
			// The guest was asked to power off and did: not destroyed.
			log, err := h.Exec(t, "cat", "/var/log/libvirt/qemu/"+name+".log")
			if err != nil {
				return err
			}
			if !strings.Contains(string(log), "shutting down, reason=shutdown") {
				return fmt.Errorf("the domain was not shut down gracefully:\n%s", log)
			}
			h.RunnerViewUntouched(t)
			if _, err := os.Stat(filepath.Join(domains, name)); err == nil {
				return fmt.Errorf("destroy left the domain's folder on the runner")
			}
			return nil
		},
		Steps: []resource.TestStep{
			{
				Config: cfg,
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(web, "boot_test_result.status", "passed"),
					resource.TestCheckResourceAttr(web, "boot_test_result.disk_bus", "virtio"),
					// The two-phase first boot, on the host: SATA until the
					// guest is up (it powers itself off), then its own bus.
					resource.TestCheckResourceAttr(web, "boot_phases.#", "2"),
					resource.TestCheckResourceAttr(web, "boot_phases.0.disk_bus", "sata"),
					resource.TestCheckResourceAttr(web, "boot_phases.0.status", "passed"),
					resource.TestCheckResourceAttr(web, "boot_phases.1.disk_bus", "virtio"),
					resource.TestCheckResourceAttr(web, "boot_phases.1.status", "passed"),
					resource.TestCheckResourceAttr(web, "disks.0.overlay", "volume:"+h.Pool+"/"+overlay),
					// The console, read through libvirt's stream, is kept on the runner.
					resource.TestCheckResourceAttr(web, "console_log", filepath.Join(domains, name, "console.log")),
					func(*terraform.State) error {
						log, err := os.ReadFile(filepath.Join(domains, name, "console.log"))
						if err != nil || !strings.Contains(string(log), boottest.Marker) {
							return fmt.Errorf("the console log kept on the runner has no boot marker (%v)", err)
						}
						// The guest's serial console was configured before
						// vmconv saw it (GRUB on the serial terminal,
						// console=ttyS0 on every kernel line): GRUB itself
						// wrote to the port the boot test read.
						if !strings.Contains(string(log), "GNU GRUB") {
							return fmt.Errorf("the console log has no GRUB menu, so the guest's own serial terminal was not in use")
						}
						return nil
					},
					resource.TestMatchResourceAttr(web, "xml", regexp.MustCompile(`<source file='`+regexp.QuoteMeta(h.PoolPath+"/"+overlay)+`'`)),
					func(*terraform.State) error {
						if got := volumesOf(t, h); got != "guest.qcow2 guest.qcow2.vmconv.json guest.qcow2.vmconv.md "+overlay { // virsh sorts by name
							return fmt.Errorf("the pool holds %q", got)
						}
						if s := strings.TrimSpace(h.Virsh(t, "domstate", name)); s != "running" {
							return fmt.Errorf("domain %s is %q on the host", name, s)
						}
						// The overlay stands on the converted volume, on the host.
						info, err := h.Exec(t, "qemu-img", "info", "-U", h.PoolPath+"/"+overlay) // -U: the running domain holds its lock
						if err != nil || !strings.Contains(string(info), "backing file: "+h.PoolPath+"/guest.qcow2") {
							return fmt.Errorf("overlay: %v\n%s", err, info)
						}
						// Held through libvirt: the volume may not go while the domain uses it.
						e, err := engine.New(engine.Config{WorkDir: t.TempDir(), CacheDir: t.TempDir(), LibvirtURI: h.BareURI, SSHKeyFile: h.KeyFile, SSHKnownHosts: h.KnownHosts})
						if err != nil {
							return err
						}
						if err := e.DeleteVolume(context.Background(), h.Pool, "guest.qcow2"); !fault.Is(err, fault.DiskInUse) || !strings.Contains(err.Error(), name) {
							return fmt.Errorf("deleting a volume a domain uses: %v", err)
						}
						h.RunnerViewUntouched(t)
						return nil
					},
				),
			},
			{Config: cfg, PlanOnly: true},
			{
				ResourceName: web, ImportState: true, ImportStateId: name, ImportStateVerify: true,
				// Import cannot know where the runner kept the log, nor on which bus the
				// domain first booted.
				ImportStateVerifyIgnore: []string{"boot_", "timeouts", "shutdown_timeout", "console_log", "initial_boot_bus"},
			},
		},
	})
}
