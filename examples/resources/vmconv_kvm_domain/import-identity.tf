# Terraform 1.12+ and OpenTofu 1.12+: import by identity, the domain's name
# or its UUID.
import {
  to       = vmconv_kvm_domain.web
  identity = { name = "web" }
}
