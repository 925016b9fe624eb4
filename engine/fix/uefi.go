package fix

import (
	"path"
	"strings"
)

// uefiFallback makes a UEFI guest boot from a fresh NVRAM. On VMware the
// firmware's NVRAM holds a boot entry for \EFI\<distro>\grubx64.efi; a new
// KVM domain starts with empty variables and only tries the removable-media
// path \EFI\BOOT\BOOTX64.EFI, which installers often do not create.
type uefiFallback struct{}

func (uefiFallback) Name() string { return "uefi-fallback" }
func (uefiFallback) Summary() string {
	return "install the boot loader at the removable-media path so a fresh NVRAM finds it"
}

const (
	espDir   = "/boot/efi/EFI"
	fallback = "/boot/efi/EFI/BOOT/BOOTX64.EFI"
)

// loaderDir finds the distribution's loader folder on the ESP.
func loaderDir(c *Context) (dir, first string, ok bool) {
	dirs, _ := c.FS.Glob(espDir + "/*")
	for _, d := range dirs {
		base := strings.ToUpper(path.Base(d))
		if base == "BOOT" || base == "MICROSOFT" {
			continue
		}
		for _, f := range []string{"shimx64.efi", "grubx64.efi"} {
			if c.FS.IsFile(d + "/" + f) {
				return d, f, true
			}
		}
	}
	return "", "", false
}

func (u uefiFallback) Applicable(c *Context) (bool, string) {
	if c.Info.Firmware != "uefi" {
		return false, "the guest boots with BIOS"
	}
	if c.FS.IsFile(fallback) || c.FS.IsFile("/boot/efi/EFI/boot/bootx64.efi") {
		return false, "the removable-media path \\EFI\\BOOT\\BOOTX64.EFI already exists"
	}
	d, f, ok := loaderDir(c)
	if !ok {
		return false, "no boot loader found on the EFI system partition"
	}
	return true, "only " + strings.TrimPrefix(d, "/boot/efi") + "/" + f + " exists, which a fresh NVRAM has no entry for"
}

func (u uefiFallback) Apply(c *Context) error {
	d, first, _ := loaderDir(c)
	copies := [][2]string{{first, "BOOTX64.EFI"}}
	if first == "shimx64.efi" {
		// shim loads grubx64.efi (and mmx64.efi) from its own folder.
		copies = append(copies, [2]string{"grubx64.efi", "grubx64.efi"}, [2]string{"mmx64.efi", "mmx64.efi"})
	}
	copies = append(copies, [2]string{"grub.cfg", "grub.cfg"})
	for _, cp := range copies {
		src := d + "/" + cp[0]
		if !c.FS.IsFile(src) {
			continue
		}
		b, err := c.FS.ReadFile(src)
		if err != nil {
			return err
		}
		if err := c.Write("/boot/efi/EFI/BOOT/"+cp[1], b, 0o644,
			"copy of "+strings.TrimPrefix(src, "/boot/efi")+" at the removable-media path the firmware tries without NVRAM entries"); err != nil {
			return err
		}
	}
	return nil
}
