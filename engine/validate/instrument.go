// Package validate is the VALIDATE stage: a boot test of the converted
// image under QEMU. It boots a throwaway overlay of the output, never the
// output itself, so the output's checksum is the same before and after.
//
// The success signal. A VMware guest has no serial console, so the boot
// test instruments the overlay: it adds console=ttyS0 to the kernel command
// line (the initramfs then reports a missing root on the serial port) and
// plants a one-shot systemd unit that, once the system reaches multi-user,
// waits up to a minute for an IPv4 address and prints a marker line carrying
// a per-test nonce and the addresses. The marker proves the guest booted to
// multi-user with its network up; the nonce proves it came from this boot.
// A login prompt would prove less (no network) and varies across distros.
// The overlay is discarded after the test, so nothing of this reaches the
// output.
package validate

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

var linuxLine = regexp.MustCompile(`(?m)^(\s*(?:linux|linux16|linuxefi)\s+\S+)(.*)$`)

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
// serial console on every kernel command line and the marker unit. The
// overlay is discarded afterwards.
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
	var changed []string
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
	withConsole := func(s string) (string, bool) {
		return linuxLine.ReplaceAllStringFunc(s, func(l string) string {
			if strings.Contains(l, "console=ttyS0") {
				return l
			}
			return l + " " + consoleArgs
		}), true
	}
	for _, p := range []string{"/boot/grub/grub.cfg", "/boot/grub2/grub.cfg"} {
		if err := edit(p, withConsole); err != nil {
			return fmt.Errorf("instrument %s: %w", p, err)
		}
	}
	bls, _ := fs.Glob("/boot/loader/entries/*.conf")
	for _, p := range bls {
		if err := edit(p, func(s string) (string, bool) {
			return regexp.MustCompile(`(?m)^(options\s.*)$`).ReplaceAllString(s, "$1 "+consoleArgs), true
		}); err != nil {
			return err
		}
	}
	// grubenv is a fixed 1024-byte block padded with '#': what the edit
	// adds comes off the padding.
	if err := edit("/boot/grub2/grubenv", func(s string) (string, bool) {
		if !strings.Contains(s, "kernelopts=") {
			return s, false
		}
		out := regexp.MustCompile(`(?m)^(kernelopts=.*)$`).ReplaceAllString(s, "$1 "+consoleArgs)
		extra := len(out) - len(s)
		if extra <= 0 || !strings.HasSuffix(out, strings.Repeat("#", extra)) {
			return s, false
		}
		return out[:len(out)-extra], true
	}); err != nil {
		return err
	}
	if len(changed) == 0 {
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
