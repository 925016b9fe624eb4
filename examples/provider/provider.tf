provider "vmconv" {
  # How many conversions run at once (default: half the CPUs, 1 to 4).
  max_parallel_conversions = 2

  # Scratch space for overlays during a conversion.
  work_dir = "/var/tmp/vmconv"
}
