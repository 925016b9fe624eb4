package boottest

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
)

// Site is where a boot test ran. A failed boot's hints speak of what
// the user can change there: a conversion's fixes; a domain's bus, NICs and
// firmware, and the conversion (or its absence) behind the domain's disk.
// A hint that names a fix or a NIC the boot never had sends the user the
// wrong way.
type Site struct {
	// Domain names the vmconv_kvm_domain that booted; empty for a
	// conversion's boot test.
	Domain string
	// Disk is the domain's first disk.
	Disk string
	// Rerun is a conversion's existing output booted again because its
	// boot_test changed.
	Rerun bool
	// Fixes are the fixes the disk's conversion ran with; nil for a
	// domain's disk that vmconv did not convert (no report beside it).
	Fixes *Fixes
	// NICs are the domain's network interfaces.
	NICs []NIC
	// Pattern is set when boot_test.success_pattern, not the planted
	// marker, was the success signal.
	Pattern bool
}

// bootHint says what happened to the output or domain, then what to look
// at for this reason, in this site.
func bootHint(r *Result, s Site) string {
	var h []string
	switch {
	case s.Domain != "":
		h = append(h, "The domain was removed again with its overlays; the disk it booted is unchanged. Its console log went with the domain's folder: the last lines are above.")
	case s.Rerun:
		h = append(h, "The output was not changed and keeps its previous boot test result; the full console log is kept at "+r.ConsoleLog+".")
	default:
		h = append(h, "Nothing was written at the output path; the full console log is kept at "+r.ConsoleLog+".")
	}
	add := func(parts ...string) {
		for _, p := range parts {
			if p != "" {
				h = append(h, p)
			}
		}
	}
	switch r.Reason {
	case ReasonRootNotFound:
		if n := s.fixNote("initramfs", "fstab", "grub"); n != "" {
			add(n)
		} else if s.Domain != "" {
			add(fmt.Sprintf("Its conversion adapted the guest to KVM: check that the disks' bus (this boot used %s) is one the guest's initramfs has a driver for, and that every disk its root needs is in disks.", r.DiskBus))
		} else {
			add("The initramfs, fstab and grub fixes ran: the console's last lines show which device the initramfs waited for.")
		}
	case ReasonEmergency:
		add(s.fixNote("fstab"))
		if s.Domain != "" {
			add("The console's last lines show which mount failed: every disk the guest's fstab names must be in disks.")
		} else {
			add("The console's last lines show which mount failed: the boot test boots this disk alone, so a file system on another disk must be nofail in the guest's fstab.")
		}
	case ReasonNetworkDown:
		if s.Domain != "" && len(s.NICs) == 0 {
			add("The domain has no network interface: add one to network_interfaces, or set boot_test.require_network = false.")
			break
		}
		add(s.fixNote("network"))
		if s.Domain != "" {
			add(fmt.Sprintf("Check that %s hands out addresses (DHCP), and that the guest's network configuration matches the NIC (a conversion with fixes.keep_network_identity keeps the source MAC pinned: set network_interfaces[].mac to it).", nicsText(s.NICs)))
		} else {
			add(fmt.Sprintf("The boot test's NIC was a %s on user-mode networking, which hands out an address by DHCP: the console's last lines show what the guest's network did.", r.NICModel))
		}
		add("If the guest is not meant to have network at boot, set boot_test.require_network = false.")
	case ReasonTimeout:
		if s.Pattern {
			add("boot_test.success_pattern never matched: check it matches a line the guest writes to its first serial port (an empty console log means the guest writes nothing there).")
		} else {
			add("The guest never reported reaching multi-user. Raise boot_test.timeout if it is only slow (software emulation is slow); the console's last lines show where it stopped.")
		}
	case ReasonNoBootloader:
		where := "boot_test.firmware"
		if s.Domain != "" {
			where = "the domain's firmware"
		}
		add(fmt.Sprintf("The boot used %s firmware: check that %s is the guest's.", r.Firmware, where))
		if r.Firmware == "uefi" {
			add(s.fixNote("uefi-fallback"))
		}
	case ReasonKernelPanic:
		add("The console's last lines show why.")
	case ReasonHypervisor:
		if s.Domain != "" {
			add(fmt.Sprintf("libvirt's log of the domain is /var/log/libvirt/qemu/%s.log.", s.Domain))
		}
	}
	return strings.Join(h, " ")
}

// fixNote says why the named fixes did not adapt the guest, "" when they
// all ran.
func (s Site) fixNote(fixes ...string) string {
	list := strings.Join(fixes, ", ")
	conv := "The conversion"
	if s.Domain != "" {
		conv = "The disk's conversion"
	}
	switch {
	case s.Fixes == nil && s.Domain == "":
		return ""
	case s.Fixes == nil:
		return fmt.Sprintf("The disk was not converted by vmconv (there is no conversion report beside it), so nothing adapted the guest to KVM: convert it with a vmconv_disk_conversion, whose fixes (%s) do that.", list)
	case !s.Fixes.Enabled:
		return fmt.Sprintf("%s ran with its fixes off (fixes.enabled = false): the fixes (%s) are what adapt the guest to KVM.", conv, list)
	case s.Fixes.DryRun:
		return fmt.Sprintf("%s ran its fixes as a dry run (fixes.dry_run = true): they were recorded, not made.", conv)
	}
	var off []string
	for _, f := range fixes {
		if slices.Contains(s.Fixes.Disabled, f) {
			off = append(off, f)
		}
	}
	if len(off) > 0 {
		return fmt.Sprintf("%s ran with fixes.disabled turning off %s: that is the fix for this.", conv, strings.Join(off, ", "))
	}
	return ""
}

func nicsText(nics []NIC) string {
	var ns []string
	for _, n := range nics {
		if n.User {
			ns = append(ns, "user-mode networking")
		} else {
			ns = append(ns, fmt.Sprintf("the libvirt network %q (virsh net-dumpxml %s)", n.Network, n.Network))
		}
	}
	return strings.Join(slices.Compact(ns), " and ")
}

// Error turns a failed boot test into a diagnostic-ready error
// with the console's last lines, and hints that fit where it ran.
func Error(r *Result, site Site) error {
	tailText := consoleTail(r.ConsoleLog, 25)
	file, what := r.ConsoleLog, "the converted guest"
	if site.Domain != "" {
		// The domain's console log goes with its folder.
		file, what = site.Disk, fmt.Sprintf("the guest of domain %q", site.Domain)
	}
	fe := fault.New(fault.BootTestFailed, file, "%s did not boot: %s", what, r.Detail).
		WithFact("Reason", r.Reason).
		WithFact("Boot", fmt.Sprintf("%s disk, %s NIC, %s firmware, %s, after %.0fs", r.DiskBus, orNone(r.NICModel), r.Firmware, r.Accel, float64(r.DurationMS)/1000))
	if r.Matched != "" {
		fe = fe.WithFact("Console line", r.Matched)
	}
	fe = fe.WithFact("Console log (last lines)", "\n"+tailText)
	return fe.WithHint("%s", bootHint(r, site))
}

func orNone(s string) string {
	if s == "" {
		return "no"
	}
	return s
}

// ConsoleLines is a console log's last n non-empty lines, escape
// sequences and control characters removed, from at most its last 64 KiB:
// what a person reads of a boot, in a progress report or a summary.
func ConsoleLines(path string, n int) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil
	}
	buf := make([]byte, min(fi.Size(), 64<<10))
	k, _ := f.ReadAt(buf, fi.Size()-int64(len(buf)))
	var out []string
	for _, l := range strings.Split(Strip(string(buf[:k])), "\n") {
		l = strings.TrimSpace(strings.Map(func(r rune) rune {
			if r < 0x20 && r != '\t' || r == 0x7f {
				return -1
			}
			return r
		}, l))
		if l != "" {
			out = append(out, l)
		}
	}
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return out
}

func consoleTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no console output)"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	for i, l := range lines {
		lines[i] = "  " + strings.TrimRight(Strip(l), "\r")
	}
	return strings.Join(lines, "\n")
}

// Fixes is what a conversion's offline fixes were set to, for hints that
// name only fixes that did not run.
type Fixes struct {
	Enabled  bool
	DryRun   bool
	Disabled []string
}

// NIC is a domain's network interface as hints describe it.
type NIC struct {
	Network string
	User    bool
}
