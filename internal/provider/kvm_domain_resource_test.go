package provider_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	tfacctest "github.com/hashicorp/terraform-plugin-testing/helper/acctest"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/vmconv/terraform-provider-vmconv/engine"
	"github.com/vmconv/terraform-provider-vmconv/engine/boottest"
	"github.com/vmconv/terraform-provider-vmconv/internal/acctest"
)

// Test domains are named test-*, so the sweeper can find what a failed run
// leaked: go test ./internal/provider/ -sweep=local.
const testDomainPrefix = "test-"

func TestMain(m *testing.M) {
	resource.TestMain(m)
}

func init() {
	resource.AddTestSweepers("vmconv_kvm_domain", &resource.Sweeper{
		Name: "vmconv_kvm_domain",
		F: func(string) error {
			e, err := engine.New(engine.Config{LibvirtURI: os.Getenv("LIBVIRT_DEFAULT_URI")})
			if err != nil {
				return err
			}
			// Every test domain, destroyed and undefined through the
			// engine, which also drops the holds its overlays put on the
			// converted images.
			names, err := virsh("list", "--all", "--name")
			if err != nil {
				return fmt.Errorf("virsh list: %v: %s", err, names)
			}
			for _, n := range strings.Fields(names) {
				if !strings.HasPrefix(n, testDomainPrefix) {
					continue
				}
				live, ok, err := e.ReadDomain(n)
				if err != nil || !ok {
					continue
				}
				var disks, overlays []string
				for _, d := range live.Disks {
					disks, overlays = append(disks, d.Backing), append(overlays, d.Path)
				}
				if err := e.DeleteDomain(context.Background(), n, disks, overlays, 0); err != nil {
					return err
				}
				fmt.Println("swept domain", n)
			}
			return err
		},
	})
}

func testDomainName(tag string) string {
	return testDomainPrefix + tag + "-" + tfacctest.RandStringFromCharSet(6, tfacctest.CharSetAlphaNum)
}

func virsh(args ...string) (string, error) {
	out, err := exec.Command("virsh", append([]string{"-c", engine.DefaultLibvirtURI}, args...)...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func providerBlock(domainDir string) string {
	return fmt.Sprintf("provider \"vmconv\" {\n  domain_dir = %s\n}\n", acctest.HCLString(domainDir))
}

// checkDomain asserts what libvirt itself says about a domain.
func checkDomain(name, state string, memKiB int) resource.TestCheckFunc {
	return func(*terraform.State) error {
		s, err := virsh("domstate", name)
		if err != nil {
			return fmt.Errorf("virsh domstate %s: %v: %s", name, err, s)
		}
		if s != state {
			return fmt.Errorf("domain %s is %q, want %q", name, s, state)
		}
		info, err := virsh("dominfo", name)
		if err != nil {
			return err
		}
		if want := fmt.Sprintf("%d KiB", memKiB); !strings.Contains(info, want) {
			return fmt.Errorf("domain %s memory: want %s in\n%s", name, want, info)
		}
		return nil
	}
}

func checkDomainGone(name, dir string) resource.TestCheckFunc {
	return func(*terraform.State) error {
		if out, err := virsh("dominfo", name); err == nil {
			return fmt.Errorf("domain %s still defined:\n%s", name, out)
		}
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			return fmt.Errorf("domain %s left its folder %s", name, filepath.Join(dir, name))
		}
		return nil
	}
}

// TestAccKVMDomain_lifecycle converts the plain Debian guest and runs it as
// two libvirt domains on the one converted image: "web" boots on virtio, and
// "seq" boots first on SATA and then on virtio (the sequenced boot). Both
// must reach the boot marker with their network up, through libvirt. Then:
// a plan after the guests ran changes nothing, web's memory changes in
// place, web imports by name and by UUID, a domain undefined behind
// Terraform's back is recreated, and destroy leaves nothing behind.
func TestAccKVMDomain_lifecycle(t *testing.T) {
	t.Parallel()
	fx := acctest.GuestFixtures(t)
	dir := acctest.SharedTempDir(t)
	domains := filepath.Join(dir, "domains")
	out := filepath.Join(dir, "plain.qcow2")
	web, seq := testDomainName("web"), testDomainName("seq")
	var uuidWeb, uuidSeq, outSum string

	config := func(webMemory int, seqBootTest string) string {
		return providerBlock(domains) + guestConversion(fx.Path(fx.Variants["plain"].Disk), out, "  boot_test { enabled = false }") + fmt.Sprintf(`
resource "vmconv_kvm_domain" "web" {
  name   = %q
  memory = %d
  vcpus  = 1
  disks { path = vmconv_disk_conversion.guest.output.path }
  network_interfaces { user = true }
  boot_test { timeout = "20m" }
}

resource "vmconv_kvm_domain" "seq" {
  name   = %q
  memory = 768
  disks { path = vmconv_disk_conversion.guest.output.path }
  network_interfaces {
    user = true
    mac  = "52:54:00:aa:bb:01"
  }
  %s
}
`, web, webMemory, seq, seqBootTest)
	}
	const webAddr, seqAddr = "vmconv_kvm_domain.web", "vmconv_kvm_domain.seq"
	const seqPhases = `initial_boot_bus = "sata"
  boot_test { timeout = "20m" }`

	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { acctest.PreCheck(t) },
		ProtoV6ProviderFactories: acctest.ProviderFactories,
		CheckDestroy: resource.ComposeAggregateTestCheckFunc(
			checkDomainGone(web, domains), checkDomainGone(seq, domains),
			func(*terraform.State) error {
				for _, p := range []string{out, out + ".vmconv-holds"} {
					if _, err := os.Stat(p); err == nil {
						return fmt.Errorf("destroy left %s", p)
					}
				}
				return nil
			}),
		Steps: []resource.TestStep{
			{
				Config: config(1024, seqPhases),
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(webAddr, "boot_test_result.status", "passed"),
					resource.TestCheckResourceAttr(webAddr, "boot_test_result.disk_bus", "virtio"),
					resource.TestCheckResourceAttr(webAddr, "boot_phases.#", "1"),
					resource.TestCheckResourceAttr(webAddr, "firmware", "bios"),
					resource.TestCheckResourceAttr(webAddr, "mac_addresses.#", "1"),
					resource.TestMatchResourceAttr(webAddr, "network_interfaces.0.mac", regexpMust(`^52:54:00:[0-9a-f:]{8}$`)),
					resource.TestMatchResourceAttr(webAddr, "uuid", regexpMust(`^[0-9a-f-]{36}$`)),
					resource.TestMatchResourceAttr(webAddr, "xml", regexpMust(`<domain type='(qemu|kvm)'`)),
					resource.TestCheckResourceAttr(seqAddr, "boot_phases.#", "2"),
					resource.TestCheckResourceAttr(seqAddr, "boot_phases.0.disk_bus", "sata"),
					resource.TestCheckResourceAttr(seqAddr, "boot_phases.0.status", "passed"),
					resource.TestCheckResourceAttr(seqAddr, "boot_phases.1.disk_bus", "virtio"),
					resource.TestCheckResourceAttr(seqAddr, "boot_phases.1.status", "passed"),
					resource.TestCheckResourceAttr(seqAddr, "mac_addresses.0", "52:54:00:aa:bb:01"),
					resource.TestMatchResourceAttr(seqAddr, "xml", regexpMust(`<target dev='vda' bus='virtio'`)),
					checkDomain(web, "running", 1024*1024),
					checkDomain(seq, "running", 768*1024),
					resource.TestCheckResourceAttrWith(webAddr, "uuid", func(v string) error { uuidWeb = v; return nil }),
					resource.TestCheckResourceAttrWith(seqAddr, "uuid", func(v string) error { uuidSeq = v; return nil }),
					resource.TestCheckResourceAttrWith(guestAddr, "output_sha256", func(v string) error { outSum = v; return nil }),
					checkOutputUntouched(out),
					func(*terraform.State) error {
						log, err := os.ReadFile(filepath.Join(domains, web, "console.log"))
						if err != nil {
							return err
						}
						if !strings.Contains(string(log), boottest.Marker) {
							return fmt.Errorf("web's console log has no boot marker")
						}
						return nil
					},
				),
			},
			{
				// The guests have been running and writing to their disks:
				// nothing may be replaced, the converted image least of all.
				Config: config(1024, seqPhases),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectEmptyPlan(),
				}},
				Check: resource.ComposeAggregateTestCheckFunc(
					checkOutputUntouched(out),
					resource.TestCheckResourceAttrWith(guestAddr, "output_sha256", func(v string) error {
						if v != outSum {
							return fmt.Errorf("the converted image changed under its domains")
						}
						return nil
					}),
				),
			},
			{
				Config: config(1536, seqPhases),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(webAddr, plancheck.ResourceActionUpdate),
					plancheck.ExpectResourceAction(seqAddr, plancheck.ResourceActionNoop),
					plancheck.ExpectResourceAction(guestAddr, plancheck.ResourceActionNoop),
				}},
				Check: resource.ComposeAggregateTestCheckFunc(
					checkDomain(web, "running", 1536*1024),
					resource.TestCheckResourceAttrWith(webAddr, "uuid", func(v string) error {
						if v != uuidWeb {
							return fmt.Errorf("memory change replaced the domain: uuid %s -> %s", uuidWeb, v)
						}
						return nil
					}),
				),
			},
			{
				ResourceName:            webAddr,
				ImportState:             true,
				ImportStateId:           web,
				ImportStateVerify:       true,
				ImportStateVerifyIgnore: []string{"boot_", "timeouts"},
			},
			{
				ResourceName:            webAddr,
				ImportState:             true,
				ImportStateIdFunc:       func(*terraform.State) (string, error) { return uuidWeb, nil },
				ImportStateVerify:       true,
				ImportStateVerifyIgnore: []string{"boot_", "timeouts"},
			},
			{
				// Undefined behind Terraform's back: the next apply defines
				// it again (without a boot test, and so without the SATA
				// phase the boot test ends: only the definition is at stake
				// here).
				PreConfig: func() {
					if out, err := virsh("destroy", seq); err != nil {
						t.Fatalf("virsh destroy: %v: %s", err, out)
					}
					if out, err := virsh("undefine", seq); err != nil {
						t.Fatalf("virsh undefine: %v: %s", err, out)
					}
				},
				Config: config(1536, `boot_test { enabled = false }`),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(seqAddr, plancheck.ResourceActionCreate),
					plancheck.ExpectResourceAction(webAddr, plancheck.ResourceActionNoop),
				}},
				Check: resource.ComposeAggregateTestCheckFunc(
					checkDomain(seq, "running", 768*1024),
					resource.TestCheckResourceAttrWith(seqAddr, "uuid", func(v string) error {
						if v == uuidSeq || v == "" {
							return fmt.Errorf("seq was not recreated: uuid %q", v)
						}
						return nil
					}),
				),
			},
		},
	})
}

// TestAccKVMDomain_diskInUse: destroying a conversion a domain runs on is
// refused; once the domain is gone, it is allowed. No guest boots here: the
// disk is a data disk and the domain is defined but not started.
func TestAccKVMDomain_diskInUse(t *testing.T) {
	t.Parallel()
	fx := acctest.GuestFixtures(t)
	dir := acctest.SharedTempDir(t)
	domains := filepath.Join(dir, "domains")
	out := filepath.Join(dir, "data.qcow2")
	name := testDomainName("held")
	conv := guestConversion(fx.Path(fx.Bad["data"]), out, "")
	dom := func(path string) string {
		return fmt.Sprintf(`
resource "vmconv_kvm_domain" "held" {
  name    = %q
  running = false
  disks { path = %s }
}
`, name, path)
	}
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { acctest.PreCheck(t) },
		ProtoV6ProviderFactories: acctest.ProviderFactories,
		CheckDestroy:             checkDomainGone(name, domains),
		Steps: []resource.TestStep{
			{
				Config: providerBlock(domains) + conv + dom("vmconv_disk_conversion.guest.output.path"),
				Check: resource.ComposeAggregateTestCheckFunc(
					checkDomain(name, "shut off", 1024*1024),
					resource.TestCheckResourceAttr("vmconv_kvm_domain.held", "boot_phases.#", "0"),
					resource.TestCheckNoResourceAttr("vmconv_kvm_domain.held", "boot_test_result.status"),
				),
			},
			{
				// The conversion leaves the configuration; the domain keeps
				// the image by its path.
				Config:      providerBlock(domains) + dom(acctest.HCLString(out)),
				ExpectError: wrapTolerant(`(?s)Disk Is In Use By A Domain.*` + name),
			},
			{
				Config: providerBlock(domains) + conv,
				Check: resource.ComposeAggregateTestCheckFunc(
					checkDomainGone(name, domains),
					func(*terraform.State) error {
						if _, err := os.Stat(out); err != nil {
							return fmt.Errorf("the refused destroy lost the image: %v", err)
						}
						return nil
					}),
			},
		},
	})
}

// TestAccKVMDomain_badInput: each mistake gets its diagnostic, and nothing
// half-defined is left in libvirt or on disk.
func TestAccKVMDomain_badInput(t *testing.T) {
	t.Parallel()
	if os.Getenv("TF_ACC") == "" {
		t.Skip("TF_ACC is not set: acceptance tests skipped (make test sets it)")
	}
	acctest.PreCheck(t)
	dir := acctest.SharedTempDir(t)
	domains := filepath.Join(dir, "domains")
	disk := filepath.Join(dir, "disk.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", disk, "64M").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img create: %v: %s", err, out)
	}
	emptyFirmware := filepath.Join(dir, "no-ovmf")
	os.Mkdir(emptyFirmware, 0o755)

	// A domain Terraform does not manage.
	taken := testDomainName("taken")
	xml := filepath.Join(dir, "taken.xml")
	os.WriteFile(xml, []byte(fmt.Sprintf(`<domain type="qemu"><name>%s</name><memory unit="MiB">64</memory><os><type arch="x86_64">hvm</type></os></domain>`, taken)), 0o644)
	if out, err := virsh("define", xml); err != nil {
		t.Fatalf("virsh define: %v: %s", err, out)
	}
	t.Cleanup(func() { virsh("undefine", taken) })
	takenUUID, _ := virsh("domuuid", taken)

	name := testDomainName("bad")
	dom := func(provider, name, path, extra string) string {
		return provider + fmt.Sprintf(`
resource "vmconv_kvm_domain" "bad" {
  name = %q
  disks { path = %s }
  %s
}
`, name, acctest.HCLString(path), extra)
	}
	nothingLeft := func() {
		if out, err := virsh("dominfo", name); err == nil {
			t.Errorf("a failed create left the domain defined:\n%s", out)
		}
		if _, err := os.Stat(filepath.Join(domains, name)); err == nil {
			t.Errorf("a failed create left %s", filepath.Join(domains, name))
		}
		if _, err := os.Stat(disk + ".vmconv-holds"); err == nil {
			t.Errorf("a failed create left a hold on %s", disk)
		}
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: acctest.ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config:      dom(providerBlock(domains), taken, disk, "running = false"),
				ExpectError: wrapTolerant(`(?s)Domain Name Already Taken.*` + taken + `.*terraform import`),
			},
			{
				PreConfig: func() {
					if u, _ := virsh("domuuid", taken); u != takenUUID {
						t.Errorf("the foreign domain changed: uuid %q -> %q", takenUUID, u)
					}
				},
				Config:      dom(providerBlock(domains), name, filepath.Join(dir, "missing.qcow2"), "running = false"),
				ExpectError: wrapTolerant(`(?s)Source Disk Not Found.*missing\.qcow2.*disks\[0\]\.path`),
			},
			{
				PreConfig: nothingLeft,
				Config: dom(fmt.Sprintf("provider \"vmconv\" {\n  domain_dir = %q\n  firmware_dir = %q\n}\n", domains, emptyFirmware),
					name, disk, `firmware = "uefi"`),
				ExpectError: wrapTolerant(`(?s)Firmware Not Installed.*` + regexpQuote(emptyFirmware) + `.*ovmf`),
			},
			{
				PreConfig:   nothingLeft,
				Config:      dom("provider \"vmconv\" {\n  uri = \"qemu+unix:///system?socket=/nonexistent/libvirt-sock\"\n}\n", name, disk, "running = false"),
				ExpectError: wrapTolerant(`(?s)Libvirt Not Reachable.*qemu\+unix:///system\?socket=/nonexistent/libvirt-sock.*libvirtd is running`),
			},
			{
				// Importing a domain that is not there says so (Terraform's
				// words: the provider found nothing by that name).
				Config:        dom(providerBlock(domains), name, disk, "running = false"),
				ResourceName:  "vmconv_kvm_domain.bad",
				ImportState:   true,
				ImportStateId: testDomainName("absent"),
				ExpectError:   wrapTolerant(`(?s)Cannot import non-existent remote object`),
			},
			{
				PreConfig: nothingLeft,
				Config:    dom(providerBlock(domains), name, disk, "running = false"),
				Check:     checkDomain(name, "shut off", 1024*1024),
			},
		},
	})
	nothingLeft()
}

func regexpQuote(s string) string {
	return strings.NewReplacer(".", `\.`, "+", `\+`, "?", `\?`).Replace(s)
}
