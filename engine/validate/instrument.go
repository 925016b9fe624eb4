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
# Planted by vmconv's boot test in a throwaway overlay; never in the output.
n=0
ips=""
while [ "$n" -lt 60 ]; do
  ips=$(ip -4 -o addr show scope global 2>/dev/null | awk '{print $2 "=" $4}' | tr '\n' ' ')
  [ -n "$ips" ] && break
  n=$((n + 1))
  sleep 1
done
echo "%s %s ip=${ips:-none}" > /dev/ttyS0
`

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

// Instrument prepares a mounted guest for the boot test: a serial console
// on every kernel command line and the marker unit.
func Instrument(fs guest.FS, nonce string) error {
	var consoles int
	for _, p := range []string{"/boot/grub/grub.cfg", "/boot/grub2/grub.cfg"} {
		b, err := fs.ReadFile(p)
		if err != nil {
			continue
		}
		out := linuxLine.ReplaceAllStringFunc(string(b), func(l string) string {
			if strings.Contains(l, "console=ttyS0") {
				return l
			}
			consoles++
			return l + " " + consoleArgs
		})
		if err := fs.WriteFile(p, []byte(out), 0o644); err != nil {
			return fmt.Errorf("instrument %s: %w", p, err)
		}
	}
	bls, _ := fs.Glob("/boot/loader/entries/*.conf")
	for _, p := range bls {
		b, err := fs.ReadFile(p)
		if err != nil {
			continue
		}
		out := regexp.MustCompile(`(?m)^(options\s.*)$`).ReplaceAllString(string(b), "$1 "+consoleArgs)
		consoles++
		if err := fs.WriteFile(p, []byte(out), 0o644); err != nil {
			return err
		}
	}
	if b, err := fs.ReadFile("/boot/grub2/grubenv"); err == nil && strings.Contains(string(b), "kernelopts=") {
		// grubenv is a fixed 1024-byte block padded with '#': what the
		// edit adds comes off the padding.
		s := regexp.MustCompile(`(?m)^(kernelopts=.*)$`).ReplaceAllString(string(b), "$1 "+consoleArgs)
		if extra := len(s) - len(b); extra > 0 && strings.HasSuffix(s, strings.Repeat("#", extra)) {
			s = s[:len(s)-extra]
			if err := fs.WriteFile("/boot/grub2/grubenv", []byte(s), 0o644); err != nil {
				return err
			}
			consoles++
		}
	}
	if consoles == 0 {
		return fmt.Errorf("instrument: no kernel command line found to add a serial console to")
	}
	if err := fs.WriteFile("/usr/local/sbin/vmconv-boot-marker", []byte(fmt.Sprintf(markerScript, Marker, nonce)), 0o755); err != nil {
		return err
	}
	if err := fs.WriteFile("/etc/systemd/system/vmconv-boot-marker.service", []byte(markerUnit), 0o644); err != nil {
		return err
	}
	return fs.Symlink("/etc/systemd/system/vmconv-boot-marker.service", "/etc/systemd/system/multi-user.target.wants/vmconv-boot-marker.service")
}
