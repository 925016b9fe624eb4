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
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/vmconv/terraform-provider-vmconv/internal/acctest"
	"github.com/vmconv/terraform-provider-vmconv/internal/wintest"
)

// winReg exports a registry key from a disk image with virt-win-reg, which
// reads the hive through libguestfs and hivex: not through vmconv's code.
func winReg(image, key string) (string, error) {
	cmd := exec.Command("virt-win-reg", "--unsafe-printable-strings", image, key)
	cmd.Env = acctest.GuestfsEnv()
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestAccWindowsFixes converts the synthetic Windows Server 2019 guest with
// a fake virtio-win tree. Without a driver source, and with drivers for the
// wrong architecture only, the plan fails and nothing is written. With the
// right tree the plan lists the drivers by version; the apply writes them;
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
	good, x86only := filepath.Join(dir, "virtio-win"), filepath.Join(dir, "virtio-win-x86")
	if err := wintest.VirtioWin(good, []string{"2k19", "2k16", "w10"}, []string{"amd64", "x86"}); err != nil {
		t.Fatal(err)
	}
	if err := wintest.VirtioWin(x86only, []string{"2k19"}, []string{"x86"}); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "win.qcow2")
	conv := func(fixes string) string {
		return guestConversion(src, out, fixes+"\n  boot_test = { enabled = false }")
	}
	noOutput := func() {
		if _, err := os.Stat(out); err == nil {
			t.Error("a refused conversion wrote the output")
		}
	}
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { acctest.PreCheck(t) },
		ProtoV6ProviderFactories: acctest.ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config:      conv(""),
				ExpectError: wrapTolerant(`(?s)VirtIO Drivers Not Available.*no VirtIO driver source.*virtio_win`),
			},
			{
				PreConfig:   noOutput,
				Config:      conv(fmt.Sprintf("  fixes = { windows = { virtio_win = %q } }", x86only)),
				ExpectError: wrapTolerant(`(?s)VirtIO Drivers Not Available.*no viostor driver for 2k19 or 2k16/amd64.*wrong architecture`),
			},
			{
				PreConfig: noOutput,
				Config:    conv(fmt.Sprintf("  fixes = { windows = { virtio_win = %q } }", good)),
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
						if err != nil || !strings.Contains(ro, `pnputil /add-driver`) || !strings.Contains(ro, `MsiExec.exe /X{VMWARE-TOOLS} /qn /norestart`) {
							return fmt.Errorf("RunOnce: %v\n%s", err, ro)
						}
						// The pre-existing VMware drivers are untouched.
						pv, err := winReg(out, `HKLM\SYSTEM\ControlSet001\Services\pvscsi`)
						if err != nil || !strings.Contains(pv, `"Start"=dword:00000000`) {
							return fmt.Errorf("pvscsi service: %v\n%s", err, pv)
						}
						for _, f := range []string{"/Windows/System32/drivers/viostor.sys", "/Windows/System32/drivers/vioscsi.sys",
							"/Program Files/vmconv/virtio/NetKVM/netkvm.inf", "/Program Files/vmconv/virtio/Balloon/balloon.sys"} {
							if _, err := acctest.GuestFile(out, f); err != nil {
								return fmt.Errorf("%s was not copied: %v", f, err)
							}
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
		},
	})
}
