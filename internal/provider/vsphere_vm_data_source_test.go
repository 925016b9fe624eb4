package provider_test

import (
	"fmt"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"

	"github.com/vmconv/terraform-provider-vmconv/internal/acctest"
	"github.com/vmconv/terraform-provider-vmconv/internal/vcsimtest"
)

// TestAccVSphereVM reads a VM from govmomi's vCenter simulator on loopback,
// over TLS with a pinned thumbprint, and feeds its shape to a domain's
// attributes; a wrong password and an unpinned certificate are refused.
func TestAccVSphereVM(t *testing.T) {
	s := vcsimtest.Start(t)
	cfg := func(password, thumb string) string {
		return fmt.Sprintf(`
provider "vmconv" {
  vsphere_username = %q
  vsphere_password = %q
}

data "vmconv_vsphere_vm" "web" {
  url        = %q
  datacenter = "DC0"
  vm         = "DC0_H0_VM0"
  thumbprint = %q
}

output "firmware" {
  value = data.vmconv_vsphere_vm.web.firmware
}
`, vcsimtest.User, password, s.URL, thumb)
	}
	const addr = "data.vmconv_vsphere_vm.web"
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { acctest.PreCheck(t) },
		ProtoV6ProviderFactories: acctest.ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config: cfg(vcsimtest.Password, s.Thumbprint),
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(addr, "name", "DC0_H0_VM0"),
					resource.TestCheckResourceAttr(addr, "firmware", "bios"),
					resource.TestMatchResourceAttr(addr, "cpus", regexpMust(`^[1-9]`)),
					resource.TestMatchResourceAttr(addr, "memory", regexpMust(`^[1-9][0-9]+$`)),
					resource.TestMatchResourceAttr(addr, "disks.0.chain.0", regexpMust(`^\[LocalDS_0\] .+\.vmdk$`)),
					resource.TestCheckResourceAttr(addr, "disks.0.device", "scsi0:0"),
					resource.TestMatchResourceAttr(addr, "network_interfaces.0.mac", regexpMust(`^([0-9a-f]{2}:){5}[0-9a-f]{2}$`)),
					resource.TestCheckOutput("firmware", "bios"),
				),
			},
			{
				Config:      cfg("wr0ng", s.Thumbprint),
				ExpectError: wrapTolerant(`(?s)Authentication Failed.*refused the login of user "migrator"`),
			},
			{
				Config:      cfg(vcsimtest.Password, ""),
				ExpectError: wrapTolerant(`(?s)Server Identity Not Trusted.*certificate is not trusted.*thumbprint`),
			},
		},
	})
}
