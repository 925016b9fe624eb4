# Convert the newest layer of a VMware snapshot chain. vmconv follows the
# chain (web-000002.vmdk -> web-000001.vmdk -> web.vmdk) and merges it.
resource "vmconv_disk_conversion" "web" {
  source = { path = "/data/web/web-000002.vmdk" }
  output = {
    path        = "/var/lib/vmconv/web.qcow2"
    format      = "qcow2" # qcow2 | raw | vdi | vhdx
    compression = false
  }
}

# A raw disk without a partition table must be declared raw.
resource "vmconv_disk_conversion" "scratch" {
  source = {
    path   = "/data/scratch.img"
    format = "raw"
  }
  output = { path = "/var/lib/vmconv/scratch.qcow2" }

  timeouts = {
    create = "2h"
  }
}

output "web_disk" {
  value = vmconv_disk_conversion.web.output_sha256
}
