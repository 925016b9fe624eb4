terraform {
  required_providers {
    vmconv = { source = "vmconv/vmconv" }
  }
}

variable "source_path" {
  description = "Newest layer of the VMware snapshot chain to convert."
  type        = string
}

variable "output_dir" {
  description = "Folder for the converted image."
  type        = string
}

provider "vmconv" {}

resource "vmconv_disk_conversion" "web" {
  source = { path = var.source_path } # the newest layer of a snapshot chain
  output = {
    path        = "${var.output_dir}/web.qcow2"
    format      = "qcow2"
    compression = false
  }
}

output "web_disk" {
  value = vmconv_disk_conversion.web.output_sha256
}

output "chain" {
  value = vmconv_disk_conversion.web.chain
}

output "report" {
  value = vmconv_disk_conversion.web.report_path
}
