# Import an output written by vmconv by its absolute path. The report
# vmconv writes beside it (web.qcow2.vmconv.json) supplies the rest.
terraform import vmconv_disk_conversion.web /var/lib/vmconv/web.qcow2

# A volume in a storage pool of the provider's libvirt host: volume:<pool>/<volume>.
# Its report volume (db.qcow2.vmconv.json) supplies the rest.
terraform import vmconv_disk_conversion.db volume:vmconv/db.qcow2
