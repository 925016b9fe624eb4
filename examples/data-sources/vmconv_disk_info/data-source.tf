# Describe a VMware disk, snapshot chain included, without converting it.
data "vmconv_disk_info" "web" {
  path = "/data/web/web-000002.vmdk"
}

output "web_guest" {
  value = {
    format   = data.vmconv_disk_info.web.source_format
    chain    = data.vmconv_disk_info.web.chain
    distro   = data.vmconv_disk_info.web.guest.distro
    firmware = data.vmconv_disk_info.web.guest.firmware
  }
}
