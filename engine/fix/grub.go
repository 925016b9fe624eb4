package fix

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// grub makes the kernel's root= independent of the disk controller: a
// VMware guest often boots root=/dev/sda1, which is /dev/vda1 on KVM. It
// also drops a stale device.map (it maps BIOS drives to VMware's device
// names) and stops /etc/default/grub from bringing the device name back at
// the next update-grub.
type grub struct{}

func (grub) Name() string { return "grub" }
func (grub) Summary() string {
	return "boot root=UUID= instead of a controller-dependent device, and remove the stale device.map"
}

// rootArg matches the kernel arguments that name a device: root= and the
// swap a hibernated guest resumes from.
var rootArg = regexp.MustCompile(`(\b(?:root|resume)=)(/dev/[^\s"']+)`)

func grubConfigs(c *Context) []string {
	var out []string
	for _, p := range []string{"/boot/grub/grub.cfg", "/boot/grub2/grub.cfg"} {
		if c.FS.IsFile(p) {
			out = append(out, p)
		}
	}
	efi, _ := c.FS.Glob("/boot/efi/EFI/*/grub.cfg")
	for _, p := range efi {
		// Signed GRUB keeps a three-line stub there that loads the real
		// configuration; full configurations (RHEL 8) have linux lines.
		if b, err := c.FS.ReadFile(p); err == nil && strings.Contains(string(b), "root=") {
			out = append(out, p)
		}
	}
	bls, _ := c.FS.Glob("/boot/loader/entries/*.conf")
	out = append(out, bls...)
	if c.FS.IsFile("/boot/grub2/grubenv") {
		out = append(out, "/boot/grub2/grubenv")
	}
	return out
}

func (g grub) Applicable(c *Context) (bool, string) {
	if c.Info.OS != "linux" {
		return false, "not a Linux guest"
	}
	var work []string
	for _, p := range grubConfigs(c) {
		if n := len(g.rootEdits(c, p)); n > 0 {
			work = append(work, fmt.Sprintf("%s boots with a controller-dependent root= or resume=", p))
		}
	}
	for _, p := range []string{"/boot/grub/device.map", "/boot/grub2/device.map"} {
		if c.FS.IsFile(p) {
			work = append(work, p+" maps drives to VMware device names")
		}
	}
	if len(g.rootEdits(c, "/etc/default/grub")) > 0 {
		work = append(work, "/etc/default/grub passes a controller-dependent root= or resume=")
	}
	if b, err := c.FS.ReadFile("/etc/default/grub"); err == nil && disableUUID.Match(b) && len(work) > 0 {
		work = append(work, "/etc/default/grub sets GRUB_DISABLE_LINUX_UUID=true")
	}
	if len(work) == 0 {
		return false, "the boot loader already names root by UUID or LVM name"
	}
	return true, strings.Join(work, "; ")
}

var disableUUID = regexp.MustCompile(`(?m)^GRUB_DISABLE_LINUX_UUID=["']?true["']?\s*$`)

// rootEdits maps each unstable root= or resume= argument in a file
// ("root=/dev/sda1") to its replacement ("root=UUID=...").
func (grub) rootEdits(c *Context, p string) map[string]string {
	b, err := c.FS.ReadFile(p)
	if err != nil {
		return nil
	}
	edits := map[string]string{}
	for _, m := range rootArg.FindAllStringSubmatch(string(b), -1) {
		dev := m[2]
		if unstable, _ := isUnstable(dev); !unstable {
			continue
		}
		if f, ok := resolve(c.Info, dev); ok {
			if name, ok := stableName(f); ok {
				edits[m[0]] = m[1] + name
			}
		} else {
			c.Warn("%s in %s is not a file system of this disk; left unchanged", m[0], p)
		}
	}
	return edits
}

// rewrite applies a file's argument edits to its content.
func (g grub) rewrite(c *Context, p string, b []byte) ([]byte, []string) {
	edits := g.rootEdits(c, p)
	if len(edits) == 0 {
		return b, nil
	}
	var why []string
	for from, to := range edits {
		why = append(why, fmt.Sprintf("%s -> %s", from, to))
	}
	sort.Strings(why)
	return []byte(rootArg.ReplaceAllStringFunc(string(b), func(s string) string {
		if to, ok := edits[s]; ok {
			return to
		}
		return s
	})), why
}

func (g grub) Apply(c *Context) error {
	for _, p := range grubConfigs(c) {
		b, _ := c.FS.ReadFile(p)
		out, why := g.rewrite(c, p, b)
		if len(why) == 0 {
			continue
		}
		if err := c.Write(p, out, 0o644, "boot by stable device names: "+strings.Join(why, ", ")); err != nil {
			return err
		}
	}
	for _, p := range []string{"/boot/grub/device.map", "/boot/grub2/device.map"} {
		if c.FS.IsFile(p) {
			if err := c.Remove(p, "stale device.map maps BIOS drives to VMware device names; GRUB probes devices without it"); err != nil {
				return err
			}
		}
	}
	// The defaults update-grub regenerates grub.cfg from: the same
	// arguments there, and root by UUID kept on.
	const defaults = "/etc/default/grub"
	b, err := c.FS.ReadFile(defaults)
	if err != nil {
		return nil
	}
	out, why := g.rewrite(c, defaults, b)
	if disableUUID.Match(out) {
		out = disableUUID.ReplaceAll(out, []byte("# vmconv: root by UUID, so the disk controller does not matter\nGRUB_DISABLE_LINUX_UUID=false"))
		why = append(why, "keep root=UUID= when update-grub regenerates grub.cfg")
	}
	if len(why) == 0 {
		return nil
	}
	return c.Write(defaults, out, 0o644, strings.Join(why, "; "))
}
