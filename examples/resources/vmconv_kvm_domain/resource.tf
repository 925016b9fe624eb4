resource "vmconv_disk_conversion" "web" {
  source { path = "/data/web/web-000002.vmdk" }
  output { path = "/var/lib/vmconv/web.qcow2" }
}

# The migrated VM: defined and started in libvirt, and verified by booting
# it until the guest is up with its network.
resource "vmconv_kvm_domain" "web" {
  name     = "web"
  memory   = 2048 # MiB
  vcpus    = 2
  firmware = "bios" # bios | uefi; defaults to what inspection found
  running  = true

  disks {
    path = vmconv_disk_conversion.web.output.path
    bus  = "virtio"
  }
  network_interfaces {
    network = "default"
    model   = "virtio"
    mac     = "52:54:00:12:34:56"
  }
  boot_test { timeout = "10m" }
}

# A guest that needs one boot to activate its drivers boots on SATA first,
# then on its disks' own bus.
resource "vmconv_kvm_domain" "legacy" {
  name             = "legacy"
  initial_boot_bus = "sata"

  disks { path = "/var/lib/vmconv/legacy.qcow2" }
}

# On a remote KVM host (the provider's uri, for example
# qemu+ssh://root@kvm1.example/system): the disks are volumes of a storage
# pool there, converted by vmconv_disk_conversion with output.pool. The
# domain's own disk is a volume in the same pool backed by the converted
# one, and the boot test reads the serial console through libvirt.
resource "vmconv_disk_conversion" "db" {
  source { path = "/data/db/db-000003.vmdk" }
  output {
    pool   = "vmconv"
    volume = "db.qcow2"
  }
}

resource "vmconv_kvm_domain" "db" {
  name             = "db"
  shutdown_timeout = "2m" # ACPI power button first; forced off after this

  disks {
    pool   = vmconv_disk_conversion.db.output.pool
    volume = vmconv_disk_conversion.db.output.volume
  }
  network_interfaces { network = "default" }
}
