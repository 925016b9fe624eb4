terraform {
  required_providers {
    vmconv = { source = "vmconv/vmconv" }
  }
}

variable "source_path" {
  description = "Newest layer of the VMware snapshot chain to migrate."
  type        = string
}

variable "output_dir" {
  description = "Folder for the converted image."
  type        = string
}

provider "vmconv" {}

resource "vmconv_disk_conversion" "web" {
  source = { path = var.source_path } # the newest layer of a snapshot chain
  output = {
    path        = "${var.output_dir}/web.qcow2"
    format      = "qcow2"
    compression = false
  }
  # fixes and boot_test are on by default: the guest is fixed offline and
  # must boot on virtio with its network up before the output appears.
}

output "web_disk" {
  value = vmconv_disk_conversion.web.output_sha256
}

output "guest" {
  value = vmconv_disk_conversion.web.guest
}

output "fixes_applied" {
  value = [for c in vmconv_disk_conversion.web.fixes_applied : "${c.fix}: ${c.action} ${c.path}${c.command}"]
}

output "boot_test" {
  value = vmconv_disk_conversion.web.boot_test_result
}
