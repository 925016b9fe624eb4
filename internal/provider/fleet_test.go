package provider_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/vmconv/terraform-provider-vmconv/internal/acctest"
	"github.com/vmconv/terraform-provider-vmconv/internal/libvirttest"
	"github.com/vmconv/terraform-provider-vmconv/internal/testimg"
)

// TestAccFleet_fiftyDisksTwoHosts: one configuration, one provider alias
// per KVM host, 50 conversions spread over both by for_each, planned and
// applied with Terraform's default parallelism. Every volume lands on the
// host its alias names, and destroy empties both pools.
func TestAccFleet_fiftyDisksTwoHosts(t *testing.T) {
	hosts := []*libvirttest.Host{libvirttest.Start(t), libvirttest.Start(t)}
	dir := t.TempDir()
	var vms []string
	for i := 0; i < 50; i++ {
		raw := filepath.Join(dir, fmt.Sprintf("vm%02d.raw", i))
		f, err := os.Create(raw)
		if err != nil {
			t.Fatal(err)
		}
		f.Truncate(64 * mib)
		f.WriteAt([]byte(strings.Repeat(fmt.Sprintf("vm%02d ", i), 50000)), 8*mib)
		f.Close()
		if err := testimg.Run("qemu-img", "convert", "-f", "raw", "-O", "vmdk", raw, strings.TrimSuffix(raw, ".raw")+".vmdk"); err != nil {
			t.Fatal(err)
		}
		os.Remove(raw)
		vms = append(vms, fmt.Sprintf("    vm%02d = %s", i, acctest.HCLString(strings.TrimSuffix(raw, ".raw")+".vmdk")))
	}
	var b strings.Builder
	for i, h := range hosts {
		fmt.Fprintf(&b, `
provider "vmconv" {
  alias                = "kvm%d"
  uri                  = %s
  ssh_key_file         = %s
  ssh_known_hosts_file = %s
}
`, i+1, acctest.HCLString(h.BareURI), acctest.HCLString(h.KeyFile), acctest.HCLString(h.KnownHosts))
	}
	fmt.Fprintf(&b, `
locals {
  vms = {
%s
  }
  # Even VMs to kvm1, odd to kvm2: how a wave file maps VMs to hosts.
  kvm1 = { for k, v in local.vms : k => v if tonumber(substr(k, 2, 2)) %% 2 == 0 }
  kvm2 = { for k, v in local.vms : k => v if tonumber(substr(k, 2, 2)) %% 2 == 1 }
}

resource "vmconv_disk_conversion" "kvm1" {
  provider  = vmconv.kvm1
  for_each  = local.kvm1
  source    = { path = each.value }
  output    = { pool = "vmconv", volume = "${each.key}.qcow2" }
  fixes     = { enabled = false }
  boot_test = { enabled = false }
}

resource "vmconv_disk_conversion" "kvm2" {
  provider  = vmconv.kvm2
  for_each  = local.kvm2
  source    = { path = each.value }
  output    = { pool = "vmconv", volume = "${each.key}.qcow2" }
  fixes     = { enabled = false }
  boot_test = { enabled = false }
}
`, strings.Join(vms, "\n"))
	cfg := b.String()
	count := func(h *libvirttest.Host, parity int) error {
		got := strings.Fields(volumesOf(t, h))
		if len(got) != 50 { // 25 volumes and their reports
			return fmt.Errorf("host %s holds %d volumes, want 50: %v", h.Addr, len(got), got)
		}
		for _, v := range got {
			var n int
			if _, err := fmt.Sscanf(v, "vm%02d", &n); err != nil || n%2 != parity {
				return fmt.Errorf("host %s holds %s, which belongs to the other host", h.Addr, v)
			}
		}
		h.RunnerViewUntouched(t)
		return nil
	}
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { acctest.PreCheck(t) },
		ProtoV6ProviderFactories: acctest.ProviderFactories,
		CheckDestroy: func(*terraform.State) error {
			for _, h := range hosts {
				if got := volumesOf(t, h); got != "" {
					return fmt.Errorf("destroy left %q on %s", got, h.Addr)
				}
			}
			return nil
		},
		Steps: []resource.TestStep{
			{
				Config: cfg,
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr("vmconv_disk_conversion.kvm1[\"vm00\"]", "id", "volume:vmconv/vm00.qcow2"),
					resource.TestCheckResourceAttr("vmconv_disk_conversion.kvm2[\"vm49\"]", "id", "volume:vmconv/vm49.qcow2"),
					func(*terraform.State) error { return count(hosts[0], 0) },
					func(*terraform.State) error { return count(hosts[1], 1) },
				),
			},
			{Config: cfg, PlanOnly: true},
		},
	})
}
