# Terraform 1.12+ and OpenTofu 1.12+: import by identity, the output folder
# (or, for a VM in a pool, pool and the volume set's name).
import {
  to       = vmconv_vm_conversion.web
  identity = { dir = "/var/lib/vmconv/web" }
}
