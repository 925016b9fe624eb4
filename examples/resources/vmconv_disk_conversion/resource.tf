# Convert the newest layer of a VMware snapshot chain. vmconv follows the
# chain (web-000002.vmdk -> web-000001.vmdk -> web.vmdk) and merges it.
resource "vmconv_disk_conversion" "web" {
  source { path = "/data/web/web-000002.vmdk" }
  output {
    path        = "/var/lib/vmconv/web.qcow2"
    format      = "qcow2" # qcow2 | raw | vdi | vhdx
    compression = false
  }
}

# A raw disk without a partition table must be declared raw.
resource "vmconv_disk_conversion" "scratch" {
  source {
    path   = "/data/scratch.img"
    format = "raw"
  }
  output { path = "/var/lib/vmconv/scratch.qcow2" }

  timeouts {
    create = "2h"
  }
}

# A Windows guest: the VirtIO storage drivers for its version come from the
# virtio-win ISO (or the folder it was unpacked to) and are registered as
# boot-start services, so its first KVM boot finds its disk.
resource "vmconv_disk_conversion" "win" {
  source { path = "/data/win2019/win2019.vmdk" }
  output { path = "/var/lib/vmconv/win2019.qcow2" }
  fixes {
    windows { virtio_win = "/srv/virtio-win.iso" }
  }
}

# Into a storage pool of a KVM host: the provider's uri names the host (see
# the provider example for qemu+ssh). The image is uploaded through libvirt
# with its holes kept and appears in the pool under its name only once
# complete; nothing is left on the machine that runs Terraform.
resource "vmconv_disk_conversion" "db" {
  source { path = "/data/db/db-000003.vmdk" }
  output {
    pool   = "vmconv"
    volume = "db.qcow2"
  }
}

output "web_disk" {
  value = vmconv_disk_conversion.web.output_sha256
}
