package provider_test

import (
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"

	"github.com/vmconv/terraform-provider-vmconv/internal/acctest"
)

// TestAccTypos: a misspelt setting fails the plan, with Terraform's
// suggestion, in every resource and at every depth. As nested attributes
// the same keys were silently dropped (hashicorp/terraform#33570): output
// fromat planned, applied and wrote qcow2.
func TestAccTypos(t *testing.T) {
	step := func(config, want string) resource.TestStep {
		return resource.TestStep{Config: config, PlanOnly: true, ExpectError: wrapTolerant(want)}
	}
	disk := func(body string) string {
		return `resource "vmconv_disk_conversion" "web" {` + "\n" + body + "\n}\n"
	}
	const src, out = `source { path = "/nonexistent/web.vmdk" }`, `output { path = "/nonexistent/web.qcow2" }`
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { acctest.PreCheck(t) },
		ProtoV6ProviderFactories: acctest.ProviderFactories,
		Steps: []resource.TestStep{
			// vmconv_disk_conversion: output, fixes (and a block in it),
			// boot_test, a source kind's settings, timeouts.
			step(disk(src+"\noutput {\n  path   = \"/nonexistent/web.qcow2\"\n  fromat = \"raw\"\n}"),
				`(?s)Unsupported argument.*An argument named "fromat" is not expected here. Did you mean "format"\?`),
			step(disk(src+"\n"+out+"\nfixes { dissabled = [\"network\"] }"),
				`(?s)Unsupported argument.*"dissabled" is not expected here. Did you mean "disabled"\?`),
			step(disk(src+"\n"+out+"\nfixes {\n  windows { virtio_wim = \"/isos/virtio-win.iso\" }\n}"),
				`(?s)Unsupported argument.*"virtio_wim" is not expected here. Did you mean "virtio_win"\?`),
			step(disk(src+"\n"+out+"\nboot_test { memroy = 512 }"),
				`(?s)Unsupported argument.*"memroy" is not expected here. Did you mean "memory"\?`),
			step(disk("source {\n  ova { pth = \"/nonexistent/web.ova\" }\n}\n"+out),
				`(?s)Unsupported argument.*"pth" is not expected here. Did you mean "path"\?`),
			step(disk(src+"\n"+out+"\ntimeouts { craete = \"5m\" }"),
				`(?s)Unsupported argument.*"craete" is not expected here. Did you mean "create"\?`),
			// A misspelt block is as much an error as a misspelt argument.
			step(disk(src+"\n"+out+"\nboot_tset { enabled = false }"),
				`(?s)Unsupported block type.*Blocks of type "boot_tset" are not expected here. Did you mean "boot_test"\?`),
			// The nested-attribute syntax of earlier versions says what to
			// write instead.
			step(disk(src+"\noutput = { path = \"/nonexistent/web.qcow2\" }"),
				`(?s)Unsupported argument.*An argument named "output" is not expected here. Did you mean to define a block of type "output"\?`),
			// An invalid value in a block is shown on its own line, not on
			// the resource's first line as a nested attribute's was.
			step(disk(src+"\n"+out+"\nboot_test {\n  enabled = true\n  memory  = 1\n}"),
				`(?s)Invalid Attribute Value.*line \d+, in resource "vmconv_disk_conversion" "web":\s+\d+:\s+memory\s+= 1`),
			// vmconv_vm_conversion: a VM source kind, and a listed disk.
			step(`resource "vmconv_vm_conversion" "web" {
  source {
    vsphere {
      url = "https://vcenter.example/sdk"
      vm  = "/dc/vm/web"
      snapshott = "none"
    }
  }
  output { dir = "/nonexistent/web" }
}`, `(?s)Unsupported argument.*"snapshott" is not expected here. Did you mean "snapshot"\?`),
			step(`resource "vmconv_vm_conversion" "db" {
  source {
    disks { path = "/nonexistent/db.vmdk" }
    disks {
      url {
        href   = "https://files.example/db-data.vmdk"
        sha265 = "00"
      }
    }
  }
  output { dri = "/nonexistent/db" }
}`, `(?s)Unsupported argument.*"sha265" is not expected here. Did you mean "sha256"\?`),
			// vmconv_kvm_domain: a disk's and a NIC's settings.
			step(`resource "vmconv_kvm_domain" "web" {
  name = "web"
  disks {
    path = "/nonexistent/web.qcow2"
    bsu  = "sata"
  }
}`, `(?s)Unsupported argument.*"bsu" is not expected here. Did you mean "bus"\?`),
			step(`resource "vmconv_kvm_domain" "web" {
  name = "web"
  disks { path = "/nonexistent/web.qcow2" }
  network_interfaces {
    user  = true
    modle = "e1000e"
  }
}`, `(?s)Unsupported argument.*"modle" is not expected here. Did you mean "model"\?`),
		},
	})
}
