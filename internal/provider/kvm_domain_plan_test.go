package provider_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/vmconv/terraform-provider-vmconv/internal/acctest"
)

// TestAccKVMDomain_unreachableDisk: the conversion's output goes in a
// folder root can use but libvirt's QEMU user cannot enter (0700), and the
// domain is to start on it. The plan fails on the domain (not the apply,
// when libvirt starts it, after the conversion), naming the folder, its mode, the QEMU user
// libvirt reports and the chmod that fixes it; nothing is converted. Once
// the folder lets the QEMU user search it (and only that: o+x), the plan
// goes through.
func TestAccKVMDomain_unreachableDisk(t *testing.T) {
	t.Parallel()
	if os.Getenv("TF_ACC") == "" {
		t.Skip("TF_ACC is not set: acceptance tests skipped (make test sets it)")
	}
	acctest.PreCheck(t)
	dir := acctest.SharedTempDir(t)
	domains := filepath.Join(dir, "domains")
	src := filepath.Join(dir, "data.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", src, "64M").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img create: %v: %s", err, out)
	}
	private := filepath.Join(dir, "private")
	if err := os.Mkdir(private, 0o700); err != nil {
		t.Fatal(err)
	}
	os.Chmod(private, 0o700)
	out := filepath.Join(private, "data.qcow2")
	name := testDomainName("private")
	config := providerBlock(domains) + guestConversion(src, out, dataPlaneOnly) + fmt.Sprintf(`
resource "vmconv_kvm_domain" "private" {
  name = %q
  disks { path = vmconv_disk_conversion.guest.output.path }
  network_interfaces { user = true }
  boot_test { enabled = false }
}
`, name)
	nothingRan := func() {
		if _, err := os.Stat(out); err == nil {
			t.Errorf("the refused plan converted the disk to %s", out)
		}
		if o, err := virsh("dominfo", name); err == nil {
			t.Errorf("the refused plan defined the domain:\n%s", o)
		}
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: acctest.ProviderFactories,
		CheckDestroy:             checkDomainGone(name, domains),
		Steps: []resource.TestStep{
			{
				Config: config,
				ExpectError: wrapTolerant(`(?s)Domain Disk Not Reachable By QEMU.*` +
					`libvirt runs QEMU as libvirt-qemu.*disk 0 \(` + regexp.QuoteMeta(out) + `, which does not exist yet\).*` +
					`folder ` + regexp.QuoteMeta(private) + ` \(drwx------, owner root:root\).*uid 64055.*` +
					`chmod o\+x ` + regexp.QuoteMeta(private) + `.*does not change permissions`),
			},
			{
				PreConfig: func() {
					nothingRan()
					if fi, err := os.Stat(private); err != nil || fi.Mode().Perm() != 0o700 {
						t.Fatalf("the plan changed the folder's mode: %v %v", fi.Mode(), err)
					}
					os.Chmod(private, 0o711)
				},
				Config:             config,
				PlanOnly:           true,
				ExpectNonEmptyPlan: true,
			},
		},
	})
	nothingRan()
}

// TestAccKVMDomain_noNetworkInterface: a domain without a network
// interface cannot show a network at boot. Left at its default, the boot
// test does not require it and the plan says so in a warning; set to true
// explicitly, the plan fails instead of an apply failing after the whole
// boot with a hint about the network fix.
func TestAccKVMDomain_noNetworkInterface(t *testing.T) {
	t.Parallel()
	if os.Getenv("TF_ACC") == "" {
		t.Skip("TF_ACC is not set: acceptance tests skipped (make test sets it)")
	}
	acctest.PreCheck(t)
	dir := acctest.SharedTempDir(t)
	disk := filepath.Join(dir, "disk.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", disk, "64M").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img create: %v: %s", err, out)
	}
	name := testDomainName("nonic")
	dom := func(bootTest string) string {
		return providerBlock(filepath.Join(dir, "domains")) + fmt.Sprintf(`
resource "vmconv_kvm_domain" "nonic" {
  name = %q
  disks { path = %s }
  %s
}
`, name, acctest.HCLString(disk), bootTest)
	}
	const addr = "vmconv_kvm_domain.nonic"
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: acctest.ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config:      dom(`boot_test { require_network = true }`),
				PlanOnly:    true,
				ExpectError: wrapTolerant(`(?s)Boot Test Cannot Succeed.*require_network is true, but the domain has no network interface.*network_interfaces.*require_network = false`),
			},
			{
				Config:             dom(`boot_test { timeout = "20m" }`),
				PlanOnly:           true,
				ExpectNonEmptyPlan: true,
				ConfigPlanChecks: resource.ConfigPlanChecks{PostApplyPreRefresh: []plancheck.PlanCheck{
					plancheck.ExpectKnownValue(addr, tfjsonpath.New("boot_test").AtMapKey("require_network"), knownvalue.Bool(false)),
					plancheck.ExpectKnownValue(addr, tfjsonpath.New("boot_test").AtMapKey("enabled"), knownvalue.Bool(true)),
				}},
			},
			{
				// Defined (not started): the state keeps what was planned,
				// and the next plan, whose default says true again, plans
				// no change.
				Config: dom("running = false\n  boot_test { timeout = \"20m\" }"),
				Check:  resource.TestCheckResourceAttr(addr, "boot_test.require_network", "false"),
			},
			{
				Config: dom("running = false\n  boot_test { timeout = \"20m\" }"),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(addr, plancheck.ResourceActionNoop),
				}},
			},
		},
	})

	// The warning, as terraform plan prints it.
	cli := acctest.NewCLI(t)
	cli.Write("terraform {\n  required_providers {\n    vmconv = { source = \"vmconv/vmconv\" }\n  }\n}\n" + dom(""))
	plan, err := cli.Run("plan", "-no-color", "-input=false")
	if err != nil {
		t.Fatalf("terraform plan: %v\n%s", err, plan)
	}
	flat := strings.Join(strings.Fields(plan), " ")
	for _, want := range []string{"Warning: Boot Test Will Not Check The Network", "The domain has no network interface, so its boot test waits for the guest to reach multi-user", "require_network = false"} {
		if !strings.Contains(flat, want) {
			t.Errorf("the plan does not say %q:\n%s", want, plan)
		}
	}
}
