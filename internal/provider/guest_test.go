package provider_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/vmconv/terraform-provider-vmconv/engine"
	"github.com/vmconv/terraform-provider-vmconv/internal/acctest"
)

// guestConversion renders one conversion of a fixture guest.
func guestConversion(src, out, body string) string {
	return fmt.Sprintf(`
resource "vmconv_disk_conversion" "guest" {
  source { path = %s }
  output { path = %s }
%s
}
`, acctest.HCLString(src), acctest.HCLString(out), body)
}

const guestAddr = "vmconv_disk_conversion.guest"

func attrs(s *terraform.State) (map[string]string, error) {
	rs := s.RootModule().Resources[guestAddr]
	if rs == nil {
		return nil, fmt.Errorf("%s not in state", guestAddr)
	}
	return rs.Primary.Attributes, nil
}

// checkBoot asserts the last boot test passed, on the given bus, with an
// IPv4 address.
func checkBoot(bus string) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		a, err := attrs(s)
		if err != nil {
			return err
		}
		if a["boot_test_result.status"] != "passed" || a["boot_test_result.disk_bus"] != bus {
			return fmt.Errorf("boot test: status %q reason %q bus %q: %s", a["boot_test_result.status"], a["boot_test_result.reason"], a["boot_test_result.disk_bus"], a["boot_test_result.detail"])
		}
		if n, _ := strconv.Atoi(a["boot_test_result.ip_addresses.#"]); n == 0 {
			return fmt.Errorf("the guest booted but got no IPv4 address")
		}
		return nil
	}
}

// checkFixes asserts the named fixes each recorded at least one change.
func checkFixes(want ...string) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		a, err := attrs(s)
		if err != nil {
			return err
		}
		got := map[string]bool{}
		n, _ := strconv.Atoi(a["fixes_applied.#"])
		for i := 0; i < n; i++ {
			got[a[fmt.Sprintf("fixes_applied.%d.fix", i)]] = true
		}
		var missing []string
		for _, w := range want {
			if !got[w] {
				missing = append(missing, w)
			}
		}
		if len(missing) > 0 {
			var names []string
			for k := range got {
				names = append(names, k)
			}
			sort.Strings(names)
			return fmt.Errorf("fixes %v made no change; changes came from %v", missing, names)
		}
		return nil
	}
}

// checkOutputUntouched proves the boot test, which ran after the checksum
// was taken, did not change the output.
// checkMarkdownReport: beside the JSON report, a Markdown one shows every
// change to the guest (a text file's as a diff), the boot test's verdict
// with the console's last lines, and the stages.
func checkMarkdownReport(out string) resource.TestCheckFunc {
	return func(*terraform.State) error {
		md, err := os.ReadFile(out + ".vmconv.md")
		if err != nil {
			return err
		}
		rep, err := engine.ReadReport(out)
		if err != nil {
			return err
		}
		want := []string{"# vmconv: ", "## Source", "## Output", "## Guest", "## Fixes", "```diff", "## Boot test: passed",
			"The console's last lines:", "## Stages", "| CONVERT | ran |"}
		for _, c := range rep.Result.Fixes.Changes {
			w := fmt.Sprintf("- **%s** %s", c.Fix, c.Action)
			if c.Path != "" {
				w += fmt.Sprintf(" `%s`", c.Path)
			}
			want = append(want, w+": ")
		}
		for _, w := range want {
			if !strings.Contains(string(md), w) {
				return fmt.Errorf("the Markdown report lacks %q:\n%s", w, md)
			}
		}
		return nil
	}
}

func checkOutputUntouched(out string) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		a, err := attrs(s)
		if err != nil {
			return err
		}
		sum, err := acctest.SHA256File(out)
		if err != nil {
			return err
		}
		if sum != a["output_sha256"] {
			return fmt.Errorf("output changed after its checksum was taken: %s vs %s", sum, a["output_sha256"])
		}
		return nil
	}
}

// vmwareBoot boots the way the VMware VM ran: SATA, an Intel NIC with the
// VMware MAC, and for UEFI an NVRAM entry for the installed loader.
func vmwareBoot(fx *acctest.Fixtures, v acctest.Variant) string {
	entry := ""
	if v.EFILoader != "" {
		entry = fmt.Sprintf("firmware_boot_entry = %q", v.EFILoader)
	}
	return fmt.Sprintf(`boot_test {
    disk_bus  = "sata"
    nic_model = "e1000"
    mac       = %q
    cpus      = 1
    %s
  }`, fx.MAC, entry)
}

const kvmBoot = `boot_test {
    disk_bus  = "virtio"
    nic_model = "virtio"
    cpus      = 1
  }`

// testGuestVariant is the test each variant gets: the unconverted guest
// boots the way VMware ran it (the harness works), fails on virtio with the
// specific reason, and boots on virtio with its network once fixed. The
// three are conversions into outputs of their own, run as parallel
// subtests: a variant's ten minutes under emulation are three pieces the
// test scheduler can spread over the CPUs, rather than one long tail.
func testGuestVariant(t *testing.T, name, src, hostname, unfixedReason string, readBack bool, fixes ...string) {
	t.Parallel()
	fx := acctest.GuestFixtures(t)
	v := fx.Variants[name]
	if src == "" {
		src = fx.Path(v.Disk)
	}
	dir := acctest.SharedTempDir(t)
	before, err := acctest.DirSums(filepath.Dir(src))
	if err != nil {
		t.Fatal(err)
	}
	unfixed := "  fixes { enabled = false }\n  "
	run := func(t *testing.T, step resource.TestStep) {
		t.Parallel()
		resource.Test(t, resource.TestCase{
			PreCheck:                 func() { acctest.PreCheck(t) },
			ProtoV6ProviderFactories: acctest.ProviderFactories,
			Steps:                    []resource.TestStep{step},
		})
	}
	t.Run("vmware", func(t *testing.T) {
		out := filepath.Join(dir, name+"-vmware.qcow2")
		run(t, resource.TestStep{
			Config: noPreview + guestConversion(src, out, unfixed+vmwareBoot(fx, v)),
			Check:  resource.ComposeAggregateTestCheckFunc(checkBoot("sata"), resource.TestCheckResourceAttr(guestAddr, "fixes_applied.#", "0")),
		})
	})
	t.Run("unfixed", func(t *testing.T) {
		out := filepath.Join(dir, name+"-unfixed.qcow2")
		run(t, resource.TestStep{
			Config:      noPreview + guestConversion(src, out, unfixed+kvmBoot),
			ExpectError: wrapTolerant(`(?s)Boot Test Failed.*Reason: ` + unfixedReason + `.*Console log`),
		})
		if _, err := os.Stat(out); err == nil {
			t.Error("a failed boot test left an output")
		}
	})
	t.Run("fixed", func(t *testing.T) {
		out := filepath.Join(dir, name+".qcow2")
		run(t, resource.TestStep{
			// The plan previews the firmware, the fixes and the size
			// before a byte moves; the apply must then do exactly that.
			Config: guestConversion(src, out, kvmBoot),
			ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
				plancheck.ExpectKnownValue(guestAddr, tfjsonpath.New("planned_firmware"), knownvalue.StringExact(v.Firmware)),
				plancheck.ExpectKnownValue(guestAddr, tfjsonpath.New("planned_fixes"), knownvalue.NotNull()),
				plancheck.ExpectKnownValue(guestAddr, tfjsonpath.New("estimated_output_size"), knownvalue.NotNull()),
				plancheck.ExpectUnknownValue(guestAddr, tfjsonpath.New("fixes_applied")),
			}},
			Check: resource.ComposeAggregateTestCheckFunc(checkBoot("virtio"), checkFixes(fixes...), checkOutputUntouched(out),
				checkPlannedIsApplied(), checkWithinEstimate(), checkMarkdownReport(out), checkInspectionReused(out),
				func(s *terraform.State) error {
					if !readBack {
						return nil
					}
					return checkChangesReadBack(out)(s)
				},
				resource.TestCheckResourceAttr(guestAddr, "guest.firmware", v.Firmware),
				resource.TestCheckResourceAttr(guestAddr, "guest.initramfs_tool", v.Initramfs),
				resource.TestCheckResourceAttr(guestAddr, "guest.hostname", hostname)),
		})
	})
	// After all three, whichever finished last: none changed the source.
	t.Cleanup(func() {
		if err := checkSourceUntouched(filepath.Dir(src), &before)(nil); err != nil {
			t.Error(err)
		}
	})
}

func TestAccGuest_plainSnapshotChain(t *testing.T) {
	fx := acctest.GuestFixtures(t)
	// The plain guest as a two-snapshot chain: the newest layer set the
	// host name, which must be what inspection finds.
	testGuestVariant(t, "plain", fx.Path(fx.Chain[0]), "web", "root_not_found", true, "vmware-tools", "network", "fstab", "grub", "initramfs")
}

func TestAccGuest_lvm(t *testing.T) {
	testGuestVariant(t, "lvm", "", "vmware-guest", "root_not_found", false, "network", "fstab", "grub", "initramfs")
}

func TestAccGuest_networkd(t *testing.T) {
	testGuestVariant(t, "networkd", "", "vmware-guest", "root_not_found", false, "network", "fstab", "grub", "initramfs")
}

func TestAccGuest_dracut(t *testing.T) {
	testGuestVariant(t, "dracut", "", "vmware-guest", "root_not_found", false, "network", "fstab", "grub", "initramfs")
}

func TestAccGuest_uefi(t *testing.T) {
	testGuestVariant(t, "uefi", "", "vmware-guest", "no_bootloader", false, "uefi-fallback", "network", "fstab", "grub", "initramfs")
}

// TestAccGuest_eachFixMatters turns the fixes off one at a time on the LVM
// guest (root on LVM, /boot by /dev/sda1, ifupdown pinned to a VMware MAC)
// and shows the failure each one prevents. With all of them on, the same
// guest boots (TestAccGuest_lvm).
func TestAccGuest_eachFixMatters(t *testing.T) {
	t.Parallel()
	fx := acctest.GuestFixtures(t)
	src := fx.Path(fx.Variants["lvm"].Disk)
	out := filepath.Join(acctest.SharedTempDir(t), "lvm-minus-one.qcow2")
	var steps []resource.TestStep
	for _, c := range []struct{ off, reason string }{
		{"initramfs", "root_not_found"}, // no virtio_blk: the root LV's disk never appears
		{"fstab", "emergency_mode"},     // /boot by /dev/sda1 never resolves on vda
		{"network", "network_down"},     // ifupdown waits for ens192, pinned to a VMware MAC
	} {
		steps = append(steps, resource.TestStep{
			Config: noPreview + guestConversion(src, out, fmt.Sprintf(`  fixes {
    disabled          = [%q]
    keep_vmware_tools = true
  }
  %s`, c.off, kvmBoot)),
			ExpectError: wrapTolerant(`(?s)Boot Test Failed.*Reason: ` + c.reason),
		})
	}
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { acctest.PreCheck(t) },
		ProtoV6ProviderFactories: acctest.ProviderFactories,
		Steps:                    steps,
	})
	if _, err := os.Stat(out); err == nil {
		t.Error("a failed boot test left an output")
	}
}

// TestAccGuest_dryRunOnStreamOptimized records the fixes a guest needs
// without writing them.
func TestAccGuest_dryRunOnStreamOptimized(t *testing.T) {
	t.Parallel()
	fx := acctest.GuestFixtures(t)
	out := filepath.Join(acctest.SharedTempDir(t), "dry.qcow2")
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { acctest.PreCheck(t) },
		ProtoV6ProviderFactories: acctest.ProviderFactories,
		Steps: []resource.TestStep{{
			Config: guestConversion(fx.Path(fx.Stream), out, "  fixes { dry_run = true }"),
			Check: resource.ComposeAggregateTestCheckFunc(
				checkFixes("network", "fstab", "grub", "initramfs", "vmware-tools"),
				resource.TestCheckNoResourceAttr(guestAddr, "boot_test_result.status"),
				resource.TestCheckResourceAttr(guestAddr, "guest.hostname", "vmware-guest"),
				func(*terraform.State) error {
					// Nothing was written: the output's fstab is the VMware one.
					fstab, err := acctest.GuestFile(out, "/etc/fstab")
					if err != nil {
						return err
					}
					if !strings.Contains(fstab, "/dev/sda1") || strings.Contains(fstab, "UUID=") {
						return fmt.Errorf("dry run changed the guest's fstab:\n%s", fstab)
					}
					return nil
				}),
		}},
	})
}

func TestAccGuest_dataDisk(t *testing.T) {
	t.Parallel()
	fx := acctest.GuestFixtures(t)
	out := filepath.Join(acctest.SharedTempDir(t), "data.qcow2")
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { acctest.PreCheck(t) },
		ProtoV6ProviderFactories: acctest.ProviderFactories,
		Steps: []resource.TestStep{{
			Config: guestConversion(fx.Path(fx.Bad["data"]), out, ""),
			Check: resource.ComposeAggregateTestCheckFunc(
				resource.TestCheckResourceAttr(guestAddr, "guest.os", "none"),
				resource.TestCheckResourceAttr(guestAddr, "fixes_applied.#", "0"),
				resource.TestCheckNoResourceAttr(guestAddr, "boot_test_result.status"),
				func(*terraform.State) error {
					rep, err := os.ReadFile(out + ".vmconv.json")
					if err != nil {
						return err
					}
					for _, want := range []string{"no operating system on the disk (a data disk): nothing to fix", "no operating system on the disk (a data disk): nothing to boot"} {
						if !strings.Contains(string(rep), want) {
							return fmt.Errorf("report does not say %q", want)
						}
					}
					return nil
				}),
		}},
	})
}

func TestAccGuest_badGuests(t *testing.T) {
	t.Parallel()
	fx := acctest.GuestFixtures(t)
	dir := acctest.SharedTempDir(t)
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { acctest.PreCheck(t) },
		ProtoV6ProviderFactories: acctest.ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config:      guestConversion(fx.Path(fx.Bad["twoos"]), filepath.Join(dir, "two.qcow2"), ""),
				ExpectError: wrapTolerant(`(?s)More Than One Operating System Found.*2 operating systems: /dev/sda1 .*; /dev/sda2 .*inspect \{ root = "/dev/sda1" \}`),
			},
			{
				// Choosing one works.
				Config: guestConversion(fx.Path(fx.Bad["twoos"]), filepath.Join(dir, "two.qcow2"),
					`  inspect { root = "/dev/sda2" }
  fixes { disabled = ["verify"] }
  boot_test { enabled = false }`),
				Check: resource.TestCheckResourceAttr(guestAddr, "guest.root", "/dev/sda2"),
			},
			{
				Config:      guestConversion(fx.Path(fx.Bad["luks"]), filepath.Join(dir, "luks.qcow2"), ""),
				ExpectError: wrapTolerant(`(?s)Guest Disk Is Encrypted.*LUKS-encrypted volumes \(/dev/sda2\)`),
			},
		},
	})
}

// checkInspectionReused asserts the apply took the plan's inspection: its
// one appliance mounted the guest where the plan found it and fixed it,
// without detecting the operating system or listing file systems again,
// and the guest it reports is the one the plan inspected.
func checkInspectionReused(out string) resource.TestCheckFunc {
	return func(*terraform.State) error {
		rep, err := engine.ReadReport(out)
		if err != nil {
			return err
		}
		if g := rep.Plan.Guest; g == nil || g.Guest == nil || (g.How != "inspected" && g.How != "cached") || g.Guest.Mountpoints["/"] == "" {
			return fmt.Errorf("the plan did not inspect the guest or record its mountpoints: %+v", g)
		}
		calls := map[string]int{}
		for _, c := range rep.Result.Appliance {
			calls[c.Name] = c.Calls
		}
		if calls["launch"] != 1 || calls["mount root"] != 1 || calls["inspect os"] != 0 || calls["filesystems"] != 0 {
			return fmt.Errorf("the apply's appliance calls: want one launch and one mount, no OS detection or file system listing: %+v", rep.Result.Appliance)
		}
		if rep.Result.Guest == nil {
			return fmt.Errorf("the apply reports no guest")
		}
		a, _ := json.Marshal(rep.Result.Guest)
		b, _ := json.Marshal(rep.Plan.Guest.Guest)
		if string(a) != string(b) {
			return fmt.Errorf("the applied guest is not the planned one:\napplied %s\nplanned %s", a, b)
		}
		return nil
	}
}

// checkPlannedIsApplied asserts the apply made exactly the changes the
// plan previewed, in order.
func checkPlannedIsApplied() resource.TestCheckFunc {
	return func(s *terraform.State) error {
		a, err := attrs(s)
		if err != nil {
			return err
		}
		n, _ := strconv.Atoi(a["planned_fixes.#"])
		m, _ := strconv.Atoi(a["fixes_applied.#"])
		var diffs []string
		for i := 0; i < max(n, m); i++ {
			for _, k := range []string{"fix", "action", "path", "command"} {
				p, q := a[fmt.Sprintf("planned_fixes.%d.%s", i, k)], a[fmt.Sprintf("fixes_applied.%d.%s", i, k)]
				if p != q {
					diffs = append(diffs, fmt.Sprintf("change %d %s: planned %q, applied %q", i, k, p, q))
				}
			}
		}
		if n == 0 || len(diffs) > 0 {
			return fmt.Errorf("%d changes planned, %d applied:\n%s", n, m, strings.Join(diffs, "\n"))
		}
		return nil
	}
}

// checkWithinEstimate asserts the qcow2 output is no larger than the plan's
// estimate (qemu-img measure's upper bound).
func checkWithinEstimate() resource.TestCheckFunc {
	return func(s *terraform.State) error {
		a, err := attrs(s)
		if err != nil {
			return err
		}
		est, _ := strconv.ParseInt(a["estimated_output_size"], 10, 64)
		got, _ := strconv.ParseInt(a["output_size"], 10, 64)
		if est == 0 || got == 0 || got > est {
			return fmt.Errorf("output %d bytes, estimate %d bytes: the estimate must bound the output", got, est)
		}
		return nil
	}
}

// checkChangesReadBack reads every file the fixes wrote back from the
// output, with guestfish rather than vmconv's own code: each holds what the
// last change to it recorded, and each removed file is gone.
func checkChangesReadBack(out string) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		a, err := attrs(s)
		if err != nil {
			return err
		}
		want := map[string]string{} // path -> sha256, "" for removed
		n, _ := strconv.Atoi(a["fixes_applied.#"])
		for i := 0; i < n; i++ {
			p := a[fmt.Sprintf("fixes_applied.%d.path", i)]
			switch a[fmt.Sprintf("fixes_applied.%d.action", i)] {
			case "modified", "created":
				want[p] = a[fmt.Sprintf("fixes_applied.%d.after_sha256", i)]
			case "deleted":
				want[p] = ""
			}
		}
		var paths []string
		for p := range want {
			paths = append(paths, p)
		}
		sort.Strings(paths)
		got, err := acctest.GuestChecksums(out, paths)
		if err != nil {
			return err
		}
		if len(paths) < 3 {
			return fmt.Errorf("only %d files changed: %v", len(paths), paths)
		}
		for _, p := range paths {
			if got[p] != want[p] {
				return fmt.Errorf("%s in the output: sha256 %q, the change recorded %q", p, got[p], want[p])
			}
		}
		return nil
	}
}
