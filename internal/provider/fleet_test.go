package provider_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmconv/terraform-provider-vmconv/internal/acctest"
	"github.com/vmconv/terraform-provider-vmconv/internal/libvirttest"
	"github.com/vmconv/terraform-provider-vmconv/internal/testimg"
)

// TestAccFleet_fiftyDisksTwoHosts: one configuration, one provider alias
// per KVM host, 50 conversions spread over both by for_each, planned and
// applied with Terraform's default parallelism. Every volume lands on the
// host its alias names, and destroy empties both pools.
func TestAccFleet_fiftyDisksTwoHosts(t *testing.T) {
	acctest.PreCheck(t)
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
	b.WriteString("terraform {\n  required_providers {\n    vmconv = { source = \"vmconv/vmconv\" }\n  }\n}\n")
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
  provider = vmconv.kvm1
  for_each = local.kvm1
  source { path = each.value }
  output {
    pool   = "vmconv"
    volume = "${each.key}.qcow2"
  }
  fixes { enabled = false }
  boot_test { enabled = false }
}

resource "vmconv_disk_conversion" "kvm2" {
  provider = vmconv.kvm2
  for_each = local.kvm2
  source { path = each.value }
  output {
    pool   = "vmconv"
    volume = "${each.key}.qcow2"
  }
  fixes { enabled = false }
  boot_test { enabled = false }
}
`, strings.Join(vms, "\n"))
	count := func(h *libvirttest.Host, parity int) {
		t.Helper()
		got := strings.Fields(volumesOf(t, h))
		if len(got) != 75 { // 25 volumes and their JSON and Markdown reports
			t.Fatalf("host %s holds %d volumes, want 75: %v", h.Addr, len(got), got)
		}
		for _, v := range got {
			var n int
			if _, err := fmt.Sscanf(v, "vm%02d", &n); err != nil || n%2 != parity {
				t.Fatalf("host %s holds %s, which belongs to the other host", h.Addr, v)
			}
		}
		h.RunnerViewUntouched(t)
	}
	// The terraform CLI as a user runs it, with the built provider: one
	// provider process per alias, so each alias really has its own host.
	cli := acctest.NewCLI(t, "VMCONV_CACHE_DIR="+t.TempDir())
	cli.Write(b.String())
	cli.MustRun("plan", "-input=false", "-out=tfplan") // default -parallelism=10
	cli.MustRun("apply", "-input=false", "tfplan")
	count(hosts[0], 0)
	count(hosts[1], 1)
	if out, err := cli.Run("plan", "-input=false", "-detailed-exitcode"); err != nil {
		t.Fatalf("a plan after apply is not empty (%v):\n%s", err, out)
	}
	cli.MustRun("destroy", "-input=false", "-auto-approve")
	for _, h := range hosts {
		if got := volumesOf(t, h); got != "" {
			t.Errorf("destroy left %q on %s", got, h.Addr)
		}
	}
}
