// Package boottest is the VALIDATE stage: a boot test of the converted
// image under QEMU. It boots a throwaway overlay of the output, never the
// output itself, so the output's checksum is the same before and after.
//
// The success signal. A VMware guest usually has no serial console, so the
// boot test instruments the overlay: it adds console=ttyS0 to the kernel
// command line (the initramfs then reports a missing root on the serial
// port), unless the guest already has it there, as servers and cloud images
// do, and plants a one-shot systemd unit that, once the system reaches multi-user,
// waits up to a minute for an IPv4 address and prints a marker line carrying
// a per-test nonce and the addresses. The marker proves the guest booted to
// multi-user with its network up; the nonce proves it came from this boot.
// A login prompt would prove less (no network) and varies across distros.
// The overlay is discarded after the test, so nothing of this reaches the
// output.
package boottest

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/vmconv/terraform-provider-vmconv/engine/guest"
)

// Marker is the prefix of the line the planted unit prints.
const Marker = "VMCONV-BOOT-MARKER"

// consoleArgs adds the serial console and shortens dracut's wait for a root
// that will not appear (180 s by default) so that failure shows in a
// minute; initramfs-tools ignores rd.* options and waits 30 s anyway.
const consoleArgs = "console=tty0 console=ttyS0,115200n8 rd.retry=60"

var (
	linuxLine   = regexp.MustCompile(`(?m)^(\s*(?:linux|linux16|linuxefi)\s+\S+)(.*)$`)
	blsOptions  = regexp.MustCompile(`(?m)^options\s.*$`)
	kernelopts  = regexp.MustCompile(`(?m)^kernelopts=.*$`)
	consoleArgR = regexp.MustCompile(`(?:^|\s)console=(\S*)`)
)

// consoleAddition is what a kernel command line needs so that the boot
// test reads the guest on its first serial port, "" when it already does.
// The kernel makes the last console= named /dev/console, where the
// initramfs and systemd write their failures, so a guest that names ttyS0
// but a later console after it gets ttyS0 named again (naming a console
// again makes it the preferred one), with the guest's own options: the
// speed the guest set stays the speed it runs at. A guest that names no
// ttyS0 gets consoleArgs.
func consoleAddition(cmdline string) string {
	ms := consoleArgR.FindAllStringSubmatch(cmdline, -1)
	serial := ""
	for _, m := range ms {
		if m[1] == "ttyS0" || strings.HasPrefix(m[1], "ttyS0,") {
			serial = m[1]
		}
	}
	switch {
	case serial == "":
		return consoleArgs
	case ms[len(ms)-1][1] == serial:
		return ""
	}
	return "console=" + serial
}

// withConsole appends consoleAddition to a command line that needs it.
func withConsole(cmdline string) string {
	if a := consoleAddition(cmdline); a != "" {
		return cmdline + " " + a
	}
	return cmdline
}

const markerScript = `#!/bin/sh
# Planted by vmconv's boot test. %s
n=0
ips=""
while [ "$n" -lt 60 ]; do
  ips=$(ip -4 -o addr show scope global 2>/dev/null | awk '{print $2 "=" $4}' | tr '\n' ' ')
  [ -n "$ips" ] && break
  n=$((n + 1))
  sleep 1
done
echo "%s %s ip=${ips:-none}" > /dev/ttyS0
%s`

const markerUnit = `[Unit]
Description=vmconv boot test marker
Wants=network-online.target
After=network-online.target multi-user.target

[Service]
Type=oneshot
ExecStart=/bin/sh /usr/local/sbin/vmconv-boot-marker

[Install]
WantedBy=multi-user.target
`

const (
	markerPath = "/usr/local/sbin/vmconv-boot-marker"
	unitPath   = "/etc/systemd/system/vmconv-boot-marker.service"
	wantsPath  = "/etc/systemd/system/multi-user.target.wants/vmconv-boot-marker.service"
	origSuffix = ".vmconv-orig"
)

// Instrument prepares a mounted throwaway overlay for the boot test: a
// serial console on every kernel command line that lacks one, and the
// marker unit. The overlay is discarded afterwards.
func Instrument(fs guest.FS, nonce string) error { return instrument(fs, nonce, false, false) }

// InstrumentOnce prepares a guest's real disk (a domain's) for one boot
// test: every file changed is backed up, and once the marker has reported
// it restores them and deletes itself, so nothing of the test stays.
func InstrumentOnce(fs guest.FS, nonce string) error { return instrument(fs, nonce, true, false) }

// InstrumentPhase is InstrumentOnce for the first boot of a sequenced boot:
// after reporting, the guest also powers itself off, cleanly, so the phase
// ends without relying on the guest honouring an ACPI power button (a
// guest without logind ignores it) and without pulling the plug on a guest
// that is still activating drivers.
func InstrumentPhase(fs guest.FS, nonce string) error { return instrument(fs, nonce, true, true) }

func instrument(fs guest.FS, nonce string, once, poweroff bool) error {
	// found counts the kernel command lines seen, changed or not: a guest
	// whose every line already has its serial console needs no edit, only
	// the marker.
	var changed []string
	found := 0
	edit := func(p string, edit func(string) (string, bool)) error {
		b, err := fs.ReadFile(p)
		if err != nil {
			return nil
		}
		out, ok := edit(string(b))
		if !ok || out == string(b) {
			return nil
		}
		if once {
			if err := fs.WriteFile(p+origSuffix, b, 0o644); err != nil {
				return err
			}
		}
		changed = append(changed, p)
		return fs.WriteFile(p, []byte(out), 0o644)
	}
	lines := func(re *regexp.Regexp) func(string) (string, bool) {
		return func(s string) (string, bool) {
			return re.ReplaceAllStringFunc(s, func(l string) string {
				found++
				return withConsole(l)
			}), true
		}
	}
	for _, p := range []string{"/boot/grub/grub.cfg", "/boot/grub2/grub.cfg"} {
		if err := edit(p, lines(linuxLine)); err != nil {
			return fmt.Errorf("instrument %s: %w", p, err)
		}
	}
	bls, _ := fs.Glob("/boot/loader/entries/*.conf")
	for _, p := range bls {
		if err := edit(p, lines(blsOptions)); err != nil {
			return err
		}
	}
	// grubenv is a fixed 1024-byte block padded with '#': what the edit
	// adds comes off the padding.
	// A line there is no room for is not counted as found.
	if err := edit("/boot/grub2/grubenv", func(s string) (string, bool) {
		l := kernelopts.FindString(s)
		if l == "" {
			return s, false
		}
		add := consoleAddition(l)
		if add == "" {
			found++
			return s, false
		}
		add = " " + add
		if !strings.HasSuffix(s, strings.Repeat("#", len(add))) {
			return s, false
		}
		found++
		out := strings.Replace(s, l, l+add, 1)
		return out[:len(out)-len(add)], true
	}); err != nil {
		return err
	}
	if found == 0 {
		return fmt.Errorf("instrument: no kernel command line found to add a serial console to")
	}
	note, cleanup := "It runs in a throwaway overlay and never reaches the output.", ""
	if once {
		note = "It restores the boot configuration and removes itself after reporting."
		var b strings.Builder
		for _, p := range changed {
			fmt.Fprintf(&b, "mv -f %s%s %s\n", p, origSuffix, p)
		}
		fmt.Fprintf(&b, "rm -f %s %s \"$0\"\nsync\n", wantsPath, unitPath)
		if poweroff {
			b.WriteString("systemctl --no-block poweroff\n")
		}
		cleanup = b.String()
	}
	if err := fs.WriteFile(markerPath, []byte(fmt.Sprintf(markerScript, note, Marker, nonce, cleanup)), 0o755); err != nil {
		return err
	}
	if err := fs.WriteFile(unitPath, []byte(markerUnit), 0o644); err != nil {
		return err
	}
	return fs.Symlink(unitPath, wantsPath)
}
