# Convert a whole VMware VM: every disk its .vmx names, in controller
# order, inspected, fixed and boot-tested as one guest with all its disks.
resource "vmconv_vm_conversion" "web" {
  source { vmx = "/data/web/web.vmx" }
  output {
    dir    = "/var/lib/vmconv/web" # web-disk0.qcow2, web-disk1.qcow2, vmconv-report.json
    format = "qcow2"
  }
}

# The migrated VM keeps the source's shape and MACs, so DHCP reservations
# and MAC-bound licences survive.
resource "vmconv_kvm_domain" "web" {
  name     = "web"
  vcpus    = vmconv_vm_conversion.web.hardware.vcpus
  memory   = vmconv_vm_conversion.web.hardware.memory_mib
  firmware = vmconv_vm_conversion.web.hardware.firmware

  dynamic "disks" {
    for_each = vmconv_vm_conversion.web.disks
    content {
      path = disks.value.path
    }
  }
  dynamic "network_interfaces" {
    for_each = vmconv_vm_conversion.web.hardware.nics
    content {
      network = "default"
      mac     = network_interfaces.value.mac
    }
  }
}

# The other ways of naming a VM (exactly one per resource):
#
#   source {
#     ova { path = "/data/exports/db.ova" } # every disk of the OVF
#   }
#
#   source {
#     vsphere {
#       url = "https://vcenter.example/sdk"
#       vm  = "/dc/vm/db"
#     }
#   }
#
#   source {
#     esxi_ssh {
#       host        = "esxi1.example"
#       user        = "root"
#       host_key    = "SHA256:..."
#       private_key = file("~/.ssh/esxi")
#       path        = "[ds1] db/db.vmx"
#     }
#   }
#
#   source {
#     disks { path = "/data/db/db-000002.vmdk" }
#     disks {
#       url { href = "https://files.example/db-data.vmdk" }
#     }
#   }
