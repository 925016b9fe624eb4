provider "vmconv" {
  # How many conversions run at once (default: half the CPUs, 1 to 4).
  max_parallel_conversions = 2

  # Scratch space for overlays during a conversion.
  work_dir = "/var/tmp/vmconv"
}

# One alias per KVM host of a fleet. Over qemu+ssh, ssh never prompts: the
# host key must be in ssh_known_hosts_file and the key authorized there.
provider "vmconv" {
  alias                = "kvm1"
  uri                  = "qemu+ssh://root@kvm1.example/system"
  ssh_key_file         = "/etc/vmconv/id_ed25519"
  ssh_known_hosts_file = "/etc/vmconv/known_hosts"
  max_parallel_uploads = 2
}
