# Import a VM converted by vmconv by its output folder. The report vmconv
# writes into it (vmconv-report.json) supplies the rest.
terraform import vmconv_vm_conversion.web /var/lib/vmconv/web
