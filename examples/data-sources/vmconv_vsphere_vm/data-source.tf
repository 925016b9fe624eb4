provider "vmconv" {
  vsphere_username = "migrator@vsphere.local"
  # vsphere_password from VSPHERE_PASSWORD
}

data "vmconv_vsphere_vm" "web" {
  url        = "https://vcenter.example/sdk"
  datacenter = "DC0"
  vm         = "web01"
  thumbprint = "5E:93:…:1C" # or insecure = true on a lab system
}

# The migrated guest keeps the VM's shape and MAC addresses.
resource "vmconv_kvm_domain" "web" {
  name     = "web01"
  memory   = data.vmconv_vsphere_vm.web.memory
  vcpus    = data.vmconv_vsphere_vm.web.cpus
  firmware = data.vmconv_vsphere_vm.web.firmware

  disks { path = "/var/lib/vmconv/web01.qcow2" }
  dynamic "network_interfaces" {
    for_each = data.vmconv_vsphere_vm.web.network_interfaces
    content {
      network = "default"
      model   = "virtio"
      mac     = network_interfaces.value.mac
    }
  }
}
