# Terraform 1.12+ and OpenTofu 1.12+: import by identity, the output's path
# (or pool and volume), with -generate-config-out to write its configuration.
import {
  to       = vmconv_disk_conversion.web
  identity = { path = "/var/lib/vmconv/web.qcow2" }
}

import {
  to = vmconv_disk_conversion.db
  identity = {
    pool   = "vmconv"
    volume = "db.qcow2"
  }
}
