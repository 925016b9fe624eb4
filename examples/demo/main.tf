terraform {
  required_providers {
    vmconv = { source = "vmconv/vmconv" }
  }
}

variable "source_vmx" {
  description = "The VMware VM to migrate: its .vmx, in the VM's folder with every disk it names."
  type        = string
}

variable "output_dir" {
  description = "Folder for the converted images (one per disk) and the report."
  type        = string
}

variable "domain_name" {
  description = "Name of the libvirt domain."
  type        = string
  default     = "vmconv-demo-web"
}

provider "vmconv" {}

# The whole VM: both disks its .vmx names (the boot disk a snapshot chain,
# /srv and swap on the second, named /dev/sdb1 and /dev/sdb2 in fstab),
# inspected, fixed and boot-tested as one guest.
resource "vmconv_vm_conversion" "web" {
  source { vmx = var.source_vmx }
  output {
    dir    = var.output_dir # web-disk0.qcow2, web-disk1.qcow2, vmconv-report.json
    format = "qcow2"
  }
  # fixes and boot_test are on by default: the guest is fixed offline and
  # must boot on virtio with both disks and its network up before the
  # images appear.
}

# The migrated VM, running under libvirt with the source's shape and MAC.
# It boots on its own overlays of the converted images, so the guest's
# writes never touch what the conversion made, and the apply waits until
# the guest is up with its network.
resource "vmconv_kvm_domain" "web" {
  name   = var.domain_name
  memory = max(vmconv_vm_conversion.web.hardware.memory_mib, 1024)
  vcpus  = vmconv_vm_conversion.web.hardware.vcpus

  dynamic "disks" {
    for_each = vmconv_vm_conversion.web.disks
    content {
      path = disks.value.path
      bus  = "virtio"
    }
  }
  # User-mode networking needs no libvirt network; use network = "default"
  # instead of user = true where libvirt's NAT network runs.
  dynamic "network_interfaces" {
    for_each = vmconv_vm_conversion.web.hardware.nics
    content {
      user  = true
      model = "virtio"
      mac   = network_interfaces.value.mac
    }
  }
  boot_test { timeout = "20m" }
}

output "disks" {
  value = [for d in vmconv_vm_conversion.web.disks : "${d.device} -> ${d.path} (${d.sha256})"]
}

output "hardware" {
  value = vmconv_vm_conversion.web.hardware
}

output "guest" {
  value = vmconv_vm_conversion.web.guest
}

output "fixes_applied" {
  value = [for c in vmconv_vm_conversion.web.fixes_applied : "${c.fix}: ${c.action} ${c.path}${c.command}"]
}

output "boot_test" {
  value = vmconv_vm_conversion.web.boot_test_result
}

output "domain" {
  value = {
    name        = vmconv_kvm_domain.web.name
    uuid        = vmconv_kvm_domain.web.uuid
    console_log = vmconv_kvm_domain.web.console_log
    boot_test   = vmconv_kvm_domain.web.boot_test_result
  }
}
