# Import a domain by name or by UUID. The disks' paths are read from the
# domain's definition: a vmconv overlay's backing file is the converted image.
terraform import vmconv_kvm_domain.web web
terraform import vmconv_kvm_domain.web 3f2c5a64-1b8e-4c1e-9d0a-5f6e7d8c9b0a
