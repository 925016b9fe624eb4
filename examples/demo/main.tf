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

variable "domain_name" {
  description = "Name of the libvirt domain."
  type        = string
  default     = "vmconv-demo-web"
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

# The migrated VM, running under libvirt. It boots on its own overlay of the
# converted image, so the guest's writes never touch what the conversion
# made, and the apply waits until the guest is up with its network.
resource "vmconv_kvm_domain" "web" {
  name   = var.domain_name
  memory = 1024
  vcpus  = 1
  disks  = [{ path = vmconv_disk_conversion.web.output.path, bus = "virtio" }]
  # User-mode networking needs no libvirt network; use
  # { network = "default" } where libvirt's NAT network runs.
  network_interfaces = [{ user = true, model = "virtio" }]
  boot_test          = { timeout = "20m" }
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

output "domain" {
  value = {
    name        = vmconv_kvm_domain.web.name
    uuid        = vmconv_kvm_domain.web.uuid
    console_log = vmconv_kvm_domain.web.console_log
    boot_test   = vmconv_kvm_domain.web.boot_test_result
  }
}
