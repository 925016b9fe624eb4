package provider_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
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
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/vmconv/terraform-provider-vmconv/internal/acctest"
	"github.com/vmconv/terraform-provider-vmconv/internal/guestfsenv"
	"github.com/vmconv/terraform-provider-vmconv/internal/wintest"
)

// winReg exports a registry key from a disk image with virt-win-reg, which
// reads the hive through libguestfs and hivex: not through vmconv's code.
func winReg(image, key string) (string, error) {
	cmd := exec.Command("virt-win-reg", "--unsafe-printable-strings", image, key)
	cmd.Env = guestfsenv.Env()
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestAccWindowsFixes converts the synthetic Windows Server 2019 guest with
// a fake virtio-win tree. Without a driver source, and with drivers for the
// wrong architecture only (an unpacked folder), the plan fails and nothing
// is written. With the fix disabled, it converts untouched. With the right tree, packed into an ISO as virtio-win.iso is,
// the plan lists the drivers by version; the apply writes them;
// then the hives are read back with hivex (virt-win-reg) and every service
// value, CriticalDeviceDatabase entry, RunOnce entry and copied file is
// checked, and the hive backups sit beside the report.
func TestAccWindowsFixes(t *testing.T) {
	t.Parallel()
	acctest.PreCheck(t)
	dir := acctest.SharedTempDir(t)
	src := filepath.Join(dir, "win2019.img")
	g := wintest.WindowsGuest{ProductName: "Windows Server 2019 Standard", Major: 10, Minor: 0, Build: "17763", Hostname: "win01", Machine: 0x8664, VMwareTools: true}
	if err := wintest.BuildDisk(src, g); err != nil {
		t.Fatal(err)
	}
	tree, good, x86only := filepath.Join(dir, "virtio-win"), filepath.Join(dir, "virtio-win.iso"), filepath.Join(dir, "virtio-win-x86")
	if err := wintest.VirtioWin(tree, []string{"2k19", "2k16", "w10"}, []string{"amd64", "x86"}); err != nil {
		t.Fatal(err)
	}
	if err := wintest.ISO(tree, good); err != nil {
		t.Fatal(err)
	}
	if err := wintest.VirtioWin(x86only, []string{"2k19"}, []string{"x86"}); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "win.qcow2")
	conv := func(fixes string) string {
		return guestConversion(src, out, fixes+"\n  boot_test { enabled = false }")
	}
	withISO := fmt.Sprintf("  fixes {\n    windows { virtio_win = %q }\n  }", good)
	domains := filepath.Join(dir, "domains")
	winName := testDomainName("win")
	const winAddr = "vmconv_kvm_domain.win"
	winDomain := func(body string) string {
		return fmt.Sprintf(`
resource "vmconv_kvm_domain" "win" {
  name   = %q
  memory = 1024
  disks { path = vmconv_disk_conversion.guest.output.path }
  initial_boot_bus = "sata"
  %s
}
`, winName, body)
	}
	noOutput := func() {
		if _, err := os.Stat(out); err == nil {
			t.Error("a refused conversion wrote the output")
		}
	}
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { acctest.PreCheck(t) },
		ProtoV6ProviderFactories: acctest.ProviderFactories,
		CheckDestroy:             checkDomainGone(winName, domains),
		Steps: []resource.TestStep{
			{
				Config:      conv(""),
				ExpectError: wrapTolerant(`(?s)VirtIO Drivers Not Available.*no VirtIO driver source.*virtio_win`),
			},
			{
				PreConfig:   noOutput,
				Config:      conv(fmt.Sprintf("  fixes {\n    windows { virtio_win = %q }\n  }", x86only)),
				ExpectError: wrapTolerant(`(?s)VirtIO Drivers Not Available.*no viostor driver for 2k19 or 2k16/amd64.*wrong architecture`),
			},
			{
				// The Windows fix can be turned off like any other: no
				// driver source is needed then, nothing is written into the
				// guest, and the report says the fix was disabled.
				PreConfig: noOutput,
				Config:    conv(`  fixes { disabled = ["windows-virtio"] }`),
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(guestAddr, "guest.os", "windows"),
					resource.TestCheckResourceAttr(guestAddr, "planned_fixes.#", "0"),
					resource.TestCheckResourceAttr(guestAddr, "fixes_applied.#", "0"),
					func(*terraform.State) error {
						var rep struct {
							Result struct {
								Fixes struct {
									Outcomes []struct{ Name, Status string } `json:"outcomes"`
								} `json:"fixes"`
							} `json:"result"`
						}
						b, err := os.ReadFile(out + ".vmconv.json")
						if err != nil || json.Unmarshal(b, &rep) != nil {
							return fmt.Errorf("report: %v", err)
						}
						if o := rep.Result.Fixes.Outcomes; len(o) != 1 || o[0].Name != "windows-virtio" || o[0].Status != "disabled" {
							return fmt.Errorf("fix outcomes %+v, want windows-virtio disabled", o)
						}
						return nil
					}),
			},
			{
				Config: conv(fmt.Sprintf("  fixes {\n    windows { virtio_win = %q }\n  }", good)),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectKnownValue(guestAddr, tfjsonpath.New("planned_fixes"), knownvalue.ListPartial(map[int]knownvalue.Check{
						0: knownvalue.ObjectPartial(map[string]knownvalue.Check{
							"path":   knownvalue.StringExact("/Windows/System32/drivers/viostor.sys"),
							"reason": knownvalue.StringRegexp(regexp.MustCompile(`viostor ` + regexp.QuoteMeta(wintest.VirtioVersion) + ` \(2k19/amd64\)`)),
						}),
					})),
				}},
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(guestAddr, "guest.os", "windows"),
					checkPlannedIsApplied(),
					func(*terraform.State) error {
						svc, err := winReg(out, `HKLM\SYSTEM\ControlSet001\Services\viostor`)
						if err != nil {
							return fmt.Errorf("virt-win-reg: %v\n%s", err, svc)
						}
						for _, want := range []string{`"Start"=dword:00000000`, `"Type"=dword:00000001`, `"ErrorControl"=dword:00000001`,
							`"Group"=str(1):"SCSI miniport"`, `"ImagePath"=str(2):"system32\drivers\viostor.sys"`} {
							if !strings.Contains(svc, want) {
								return fmt.Errorf("viostor service lacks %s:\n%s", want, svc)
							}
						}
						cdd, err := winReg(out, `HKLM\SYSTEM\ControlSet001\Control\CriticalDeviceDatabase\pci#ven_1af4&dev_1001&subsys_00021af4&rev_00`)
						if err != nil || !strings.Contains(cdd, `"Service"=str(1):"viostor"`) || !strings.Contains(cdd, `"ClassGUID"=str(1):"{4D36E97B-E325-11CE-BFC1-08002BE10318}"`) {
							return fmt.Errorf("CriticalDeviceDatabase entry for viostor: %v\n%s", err, cdd)
						}
						scsi, err := winReg(out, `HKLM\SYSTEM\ControlSet001\Services\vioscsi`)
						if err != nil || !strings.Contains(scsi, `"Start"=dword:00000000`) {
							return fmt.Errorf("vioscsi service: %v\n%s", err, scsi)
						}
						ro, err := winReg(out, `HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\RunOnce`)
						if err != nil || !strings.Contains(ro, `pnputil /add-driver`) || !strings.Contains(ro, `MsiExec.exe /X{VMWARE-TOOLS} /qn /norestart`) ||
							!strings.Contains(ro, `"vmconv-qemu-guest-agent"=str(1):"msiexec.exe /i \"C:\Program Files\vmconv\virtio\guest-agent\qemu-ga-x86_64.msi\" /qn /norestart"`) {
							return fmt.Errorf("RunOnce: %v\n%s", err, ro)
						}
						// The pre-existing VMware drivers are untouched.
						pv, err := winReg(out, `HKLM\SYSTEM\ControlSet001\Services\pvscsi`)
						if err != nil || !strings.Contains(pv, `"Start"=dword:00000000`) {
							return fmt.Errorf("pvscsi service: %v\n%s", err, pv)
						}
						// Each file in the guest is the one in the ISO.
						copied := map[string]string{
							"/Windows/System32/drivers/viostor.sys":                       "viostor/2k19/amd64/viostor.sys",
							"/Windows/System32/drivers/vioscsi.sys":                       "vioscsi/2k19/amd64/vioscsi.sys",
							"/Program Files/vmconv/virtio/NetKVM/netkvm.inf":              "NetKVM/2k19/amd64/netkvm.inf",
							"/Program Files/vmconv/virtio/Balloon/balloon.sys":            "Balloon/2k19/amd64/balloon.sys",
							"/Program Files/vmconv/virtio/guest-agent/qemu-ga-x86_64.msi": "guest-agent/qemu-ga-x86_64.msi",
						}
						var paths []string
						for f := range copied {
							paths = append(paths, f)
						}
						sums, err := acctest.GuestChecksums(out, paths)
						if err != nil {
							return err
						}
						for f, from := range copied {
							want, _ := os.ReadFile(filepath.Join(tree, from))
							if h := sha256.Sum256(want); sums[f] != hex.EncodeToString(h[:]) {
								return fmt.Errorf("%s is not %s from the ISO (sha256 %q)", f, from, sums[f])
							}
						}
						// Inspection read the VMware guest's drivers and tools.
						var rep struct {
							Result struct {
								Guest struct {
									Windows struct {
										Build          string   `json:"build"`
										ControlSet     string   `json:"current_control_set"`
										StorageDrivers []string `json:"storage_drivers"`
										NetworkDrivers []string `json:"network_drivers"`
										VMwareTools    string   `json:"vmware_tools"`
									} `json:"windows"`
								} `json:"guest"`
							} `json:"result"`
						}
						b, err := os.ReadFile(out + ".vmconv.json")
						if err != nil || json.Unmarshal(b, &rep) != nil {
							return fmt.Errorf("report: %v", err)
						}
						w := rep.Result.Guest.Windows
						if w.Build != "17763" || w.ControlSet != "ControlSet001" || strings.Join(w.StorageDrivers, ",") != "LSI_SAS,pvscsi,storahci" ||
							strings.Join(w.NetworkDrivers, ",") != "vmxnet3ndis6" || w.VMwareTools != "MsiExec.exe /X{VMWARE-TOOLS}" {
							return fmt.Errorf("inspected Windows: %+v", w)
						}
						for _, h := range []string{"SYSTEM.orig", "SOFTWARE.orig"} {
							b, err := os.ReadFile(filepath.Join(out+".vmconv-hives", h))
							if err != nil || string(b[:4]) != "regf" {
								return fmt.Errorf("hive backup %s: %v", h, err)
							}
						}
						return nil
					}),
			},
			{
				// No marker is planted in Windows and no success pattern is
				// given: nothing could end a SATA phase, so the plan fails
				// rather than boot straight on virtio.
				Config:      providerBlock(domains) + conv(withISO) + winDomain(""),
				PlanOnly:    true,
				ExpectError: wrapTolerant(`(?s)Boot Phases Not Possible.*the guest is windows.*success_pattern`),
			},
			{
				// The two phases through libvirt, on the converted image:
				// SATA until the guest writes the pattern to its serial
				// console, the power button, the plug after shutdown_timeout
				// (the stand-in boot code ignores the button, as a hung
				// guest would), then virtio until the pattern again. The
				// disk's boot code stands in for Windows (see
				// wintest.SerialLine); the BIOS must find and run it on each
				// bus.
				Config: providerBlock(domains) + conv(withISO) + winDomain(`boot_test {
    success_pattern = "SAC>"
    timeout         = "10m"
  }
  shutdown_timeout = "5s"`),
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(winAddr, "boot_phases.#", "2"),
					resource.TestCheckResourceAttr(winAddr, "boot_phases.0.disk_bus", "sata"),
					resource.TestCheckResourceAttr(winAddr, "boot_phases.0.status", "passed"),
					resource.TestCheckResourceAttr(winAddr, "boot_phases.1.disk_bus", "virtio"),
					resource.TestCheckResourceAttr(winAddr, "boot_phases.1.status", "passed"),
					resource.TestMatchResourceAttr(winAddr, "xml", regexp.MustCompile(`<target dev='vda' bus='virtio'`)),
					checkDomain(winName, "running", 1024*1024),
					func(*terraform.State) error {
						log, err := os.ReadFile(filepath.Join(domains, winName, "console.log"))
						if err != nil || !strings.Contains(string(log), wintest.SerialLine) {
							return fmt.Errorf("the last phase's console log lacks the boot code's line: %v\n%s", err, log)
						}
						return nil
					},
				),
			},
		},
	})
}
