package provider_test

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"

	"github.com/vmconv/terraform-provider-vmconv/internal/acctest"
	"github.com/vmconv/terraform-provider-vmconv/internal/wintest"
)

// TestAccWindowsInspection inspects the synthetic Windows guest (an NTFS
// volume with SYSTEM and SOFTWARE hives written by wintest's regf code, a
// PE cmd.exe, VMware Tools registered) through libguestfs and hivex, and
// refuses a BitLocker volume and a damaged SYSTEM hive with their
// diagnostics.
func TestAccWindowsInspection(t *testing.T) {
	t.Parallel()
	acctest.PreCheck(t)
	dir := acctest.SharedTempDir(t)
	win, locked, corrupt := filepath.Join(dir, "win.img"), filepath.Join(dir, "locked.img"), filepath.Join(dir, "corrupt.img")
	g := wintest.WindowsGuest{ProductName: "Windows Server 2019 Standard", Major: 10, Minor: 0, Build: "17763", Hostname: "win01", Machine: 0x8664, VMwareTools: true}
	if err := wintest.BuildDisk(win, g); err != nil {
		t.Fatal(err)
	}
	g.BitLocker = true
	if err := wintest.BuildDisk(locked, g); err != nil {
		t.Fatal(err)
	}
	g.BitLocker, g.CorruptSystemHive = false, true
	if err := wintest.BuildDisk(corrupt, g); err != nil {
		t.Fatal(err)
	}
	cfg := func(p string) string {
		return fmt.Sprintf("data \"vmconv_disk_info\" \"w\" {\n  path = %q\n}\n", p)
	}
	const addr = "data.vmconv_disk_info.w"
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { acctest.PreCheck(t) },
		ProtoV6ProviderFactories: acctest.ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config: cfg(win),
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(addr, "guest.os", "windows"),
					resource.TestCheckResourceAttr(addr, "guest.product_name", "Windows Server 2019 Standard"),
					resource.TestCheckResourceAttr(addr, "guest.version", "10.0"),
					resource.TestCheckResourceAttr(addr, "guest.arch", "x86_64"),
					resource.TestCheckResourceAttr(addr, "guest.hostname", "win01"),
					resource.TestCheckResourceAttr(addr, "guest.firmware", "bios"),
					resource.TestCheckResourceAttr(addr, "guest.bootloader", "bootmgr"),
					resource.TestCheckResourceAttr(addr, "guest.hypervisor_tools.0", "vmware-tools"),
				),
			},
			{
				Config:      cfg(locked),
				ExpectError: wrapTolerant(`(?s)Guest Volume Is BitLocker Encrypted.*manage-bde -off`),
			},
			{
				Config:      cfg(corrupt),
				ExpectError: wrapTolerant(`(?s)Guest Inspection Failed.*registry hive cannot be read: it is damaged.*chkdsk`),
			},
		},
	})
}
