resource "vmconv_disk_conversion" "web" {
  source = { path = "/data/web/web-000002.vmdk" }
  output = { path = "/var/lib/vmconv/web.qcow2" }
}

# The migrated VM: defined and started in libvirt, and verified by booting
# it until the guest is up with its network.
resource "vmconv_kvm_domain" "web" {
  name               = "web"
  memory             = 2048 # MiB
  vcpus              = 2
  firmware           = "bios" # bios | uefi; defaults to what inspection found
  disks              = [{ path = vmconv_disk_conversion.web.output.path, bus = "virtio" }]
  network_interfaces = [{ network = "default", model = "virtio", mac = "52:54:00:12:34:56" }]
  boot_test          = { timeout = "10m" }
  running            = true
}

# A guest that needs one boot to activate its drivers boots on SATA first,
# then on its disks' own bus.
resource "vmconv_kvm_domain" "legacy" {
  name             = "legacy"
  disks            = [{ path = "/var/lib/vmconv/legacy.qcow2" }]
  initial_boot_bus = "sata"
}
