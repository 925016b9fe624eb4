// Package inspect is the INSPECT stage: it finds the operating system on a
// disk (or finds that there is none) and everything the fixes and the boot
// test need to know about it, through the narrow guest.Session interface.
package inspect

import (
	"bufio"
	"bytes"
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/engine/guest"
)

// Options choose among several operating systems.
type Options struct {
	// Root selects the root device when the disk holds more than one OS.
	Root string
}

// espGUID is the GPT type of an EFI system partition.
const espGUID = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"

// Inspect inspects the disk, mounts the chosen root and describes it. A
// disk without an operating system is not an error: it is a data disk.
func Inspect(s guest.Session, o Options) (*guest.Info, error) {
	fss, err := s.Filesystems()
	if err != nil {
		return nil, fault.Wrap(fault.InspectionFailed, "", err, "cannot list the disk's file systems")
	}
	roots, err := s.Roots()
	if err != nil {
		if strings.Contains(err.Error(), "Hivex") {
			return nil, corruptHive("", err) // libguestfs reads the registry to detect Windows
		}
		return nil, fault.Wrap(fault.InspectionFailed, "", err, "operating system detection failed")
	}
	info := &guest.Info{Filesystems: fss}
	for _, f := range fss {
		if f.Type == "crypto_LUKS" {
			info.Encrypted = append(info.Encrypted, f.Device)
		}
		if strings.EqualFold(f.Type, "BitLocker") {
			return nil, fault.New(fault.BitLocker, f.Device, "the volume %s is BitLocker-encrypted", f.Device).
				WithHint("vmconv edits Windows offline and cannot unlock BitLocker. Suspend or turn off BitLocker in the VM (manage-bde -off C:), wait for decryption to finish, and convert again.")
		}
	}
	if len(roots) == 0 {
		if p, ok := s.(interface{ HasWindowsRegistry(string) bool }); ok {
			for _, f := range fss {
				if f.Type == "ntfs" && p.HasWindowsRegistry(f.Device) {
					return nil, corruptHive(f.Device+":/Windows/System32/config/SYSTEM", fmt.Errorf("libguestfs found Windows files but could not read its registry"))
				}
			}
		}
		if len(info.Encrypted) > 0 {
			return nil, fault.New(fault.EncryptedGuest, "",
				"the disk has LUKS-encrypted volumes (%s) and no readable operating system outside them", strings.Join(info.Encrypted, ", ")).
				WithHint("vmconv fixes guests offline and cannot unlock LUKS volumes. Convert without fixes and boot test (fixes { enabled = false } and boot_test { enabled = false }) and make sure the guest's initramfs already has the virtio drivers, or decrypt the volume before converting.")
		}
		info.OS = "none"
		return info, nil
	}
	root := o.Root
	if root == "" {
		if len(roots) > 1 {
			return nil, multipleOSes(s, roots)
		}
		root = roots[0]
	} else if !guest.Has(roots, root) {
		return nil, fault.New(fault.InvalidRequest, "", "inspect.root is %s, but the operating systems found are on %s", root, strings.Join(roots, ", ")).
			WithHint("Set inspect.root to one of the devices listed.")
	}
	osi, err := s.OSInfo(root)
	if err != nil {
		return nil, fault.Wrap(fault.InspectionFailed, "", err, "cannot read the operating system on %s", root)
	}
	info.OS, info.Distro, info.ProductName, info.Arch, info.Hostname, info.Root = osi.Type, osi.Distro, osi.ProductName, osi.Arch, osi.Hostname, root
	info.Version = fmt.Sprintf("%d.%d", osi.Major, osi.Minor)
	info.PackageFormat = osi.PackageFormat
	info.Mountpoints = osi.Mountpoints
	for mp, dev := range osi.Mountpoints {
		for i := range info.Filesystems {
			if info.Filesystems[i].Device == dev {
				info.Filesystems[i].Mountpoint = mp
			}
		}
	}
	if len(info.Encrypted) > 0 {
		info.Warnings = append(info.Warnings, "LUKS-encrypted volumes are not inspected or fixed: "+strings.Join(info.Encrypted, ", "))
	}
	if lvs, err := s.LVs(); err == nil {
		info.LVM = lvs
	}
	if info.OS == "windows" {
		if err := s.MountRoot(root); err != nil {
			return nil, fault.Wrap(fault.InspectionFailed, "", err, "cannot mount the Windows volume")
		}
		info.Firmware = firmware(s, info)
		info.Bootloader = "bootmgr"
		if info.Firmware == "uefi" {
			info.Bootloader = "bootmgfw.efi"
		}
		if err := windows(s, info); err != nil {
			return nil, err
		}
		return info, nil
	}
	if info.OS != "linux" {
		return info, nil
	}
	if err := s.MountRoot(root); err != nil {
		return nil, fault.Wrap(fault.InspectionFailed, "", err, "cannot mount the guest's file systems")
	}
	info.Firmware = firmware(s, info)
	info.Bootloader = bootloader(s)
	info.InitramfsTool = initramfsTool(s)
	info.NetworkStacks = networkStacks(s)
	info.HypervisorTools = hypervisorTools(s)
	info.Kernels = kernels(s)
	info.SELinux = selinux(s)
	info.KernelArgs = kernelArgs(s)
	if len(info.Kernels) == 0 {
		info.Warnings = append(info.Warnings, "no kernel found in /boot")
	}
	return info, nil
}

// Mount mounts an inspected guest in another appliance on the same disks
// (or on copies of them): from the mountpoints its inspection recorded, so
// the appliance does not detect the operating system again (a fifth of an
// apply under emulation), or by detecting it where the inspection predates
// recorded mountpoints (a report or cached plan from an older vmconv) or
// where its root no longer mounts. The note says why it detected again.
func Mount(s guest.Disk, info *guest.Info) (string, error) {
	if info.Mountpoints["/"] == "" {
		return "", s.MountRoot(info.Root)
	}
	err := s.MountAt(info.Mountpoints)
	if err == nil {
		return "", nil
	}
	// Only / failed, and nothing was mounted after it: the disks are the
	// fingerprinted ones, so detecting the guest on them is still right.
	if err2 := s.MountRoot(info.Root); err2 != nil {
		return "", fmt.Errorf("%v; detecting the guest again: %w", err, err2)
	}
	return fmt.Sprintf("the recorded root did not mount (%v): found the guest's file systems again", err), nil
}

func multipleOSes(s guest.Session, roots []string) error {
	var lines []string
	for _, r := range roots {
		name := "unknown"
		if o, err := s.OSInfo(r); err == nil {
			name = o.ProductName
			if name == "" || name == "unknown" {
				name = o.Distro
			}
		}
		lines = append(lines, fmt.Sprintf("%s (%s)", r, name))
	}
	return fault.New(fault.MultipleOSes, "", "the disk holds %d operating systems: %s", len(roots), strings.Join(lines, "; ")).
		WithHint("Choose the one to convert with inspect { root = \"%s\" } (one of the devices listed).", roots[0])
}

func firmware(s guest.FS, info *guest.Info) string {
	d, ok := s.(guest.Disk)
	if !ok {
		return "bios"
	}
	if pt, _ := d.PartitionTable(); pt != "gpt" {
		return "bios"
	}
	for _, f := range info.Filesystems {
		if t, err := d.PartitionType(f.Device); err == nil && strings.EqualFold(t, espGUID) {
			return "uefi"
		}
	}
	if s.IsDir("/boot/efi/EFI") {
		return "uefi"
	}
	return "bios"
}

func bootloader(s guest.FS) string {
	for _, p := range []string{"/boot/grub/grub.cfg", "/boot/grub2/grub.cfg", "/boot/efi/EFI/redhat/grub.cfg"} {
		if s.IsFile(p) {
			return "grub2"
		}
	}
	if s.IsFile("/boot/grub/menu.lst") || s.IsFile("/boot/grub/grub.conf") {
		return "grub-legacy"
	}
	if s.IsDir("/boot/loader/entries") {
		return "systemd-boot"
	}
	return "unknown"
}

func initramfsTool(s guest.FS) string {
	switch {
	case s.IsFile("/usr/bin/dracut") || s.IsFile("/sbin/dracut") || s.IsFile("/usr/sbin/dracut"):
		return "dracut"
	case s.IsFile("/usr/sbin/update-initramfs") || s.IsFile("/sbin/update-initramfs"):
		return "initramfs-tools"
	case s.IsFile("/sbin/mkinitrd") || s.IsFile("/usr/sbin/mkinitrd"):
		return "mkinitrd"
	}
	return "unknown"
}

// networkStacks lists the network configuration systems that configure a
// physical interface.
func networkStacks(s guest.FS) []string {
	var out []string
	if b, err := s.ReadFile("/etc/network/interfaces"); err == nil && ifupdownConfiguresNIC(b, s) {
		out = append(out, "ifupdown")
	}
	if m, _ := s.Glob("/etc/netplan/*.yaml"); len(m) > 0 {
		out = append(out, "netplan")
	}
	if m, _ := s.Glob("/etc/NetworkManager/system-connections/*"); len(m) > 0 {
		out = append(out, "networkmanager")
	} else if m, _ := s.Glob("/etc/sysconfig/network-scripts/ifcfg-*"); len(m) > 0 {
		out = append(out, "networkmanager")
	}
	if m, _ := s.Glob("/etc/systemd/network/*.network"); len(m) > 0 {
		out = append(out, "systemd-networkd")
	}
	return out
}

func ifupdownConfiguresNIC(b []byte, s guest.FS) bool {
	text := string(b)
	if m, _ := s.Glob("/etc/network/interfaces.d/*"); len(m) > 0 {
		for _, f := range m {
			if c, err := s.ReadFile(f); err == nil {
				text += "\n" + string(c)
			}
		}
	}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == "iface" && f[1] != "lo" {
			return true
		}
	}
	return false
}

func hypervisorTools(s guest.FS) []string {
	var out []string
	switch {
	case s.IsFile("/usr/bin/vmtoolsd"):
		out = append(out, "open-vm-tools")
	case s.IsDir("/etc/vmware-tools") && s.IsFile("/usr/bin/vmware-uninstall-tools.pl"):
		out = append(out, "vmware-tools")
	}
	if s.IsFile("/usr/sbin/hv_kvp_daemon") {
		out = append(out, "hyperv-daemons")
	}
	if s.IsFile("/usr/sbin/VBoxService") {
		out = append(out, "virtualbox-guest-additions")
	}
	if s.IsFile("/usr/bin/qemu-ga") || s.IsFile("/usr/sbin/qemu-ga") {
		out = append(out, "qemu-guest-agent")
	}
	return out
}

// kernels pairs each kernel image in /boot with its initramfs.
func kernels(s guest.FS) []guest.Kernel {
	imgs, _ := s.Glob("/boot/vmlinuz-*")
	var out []guest.Kernel
	for _, img := range imgs {
		v := strings.TrimPrefix(path.Base(img), "vmlinuz-")
		if strings.Contains(v, "rescue") {
			continue
		}
		k := guest.Kernel{Version: v, Image: img}
		for _, cand := range []string{"/boot/initrd.img-" + v, "/boot/initramfs-" + v + ".img", "/boot/initrd-" + v} {
			if s.IsFile(cand) {
				k.Initramfs = cand
				break
			}
		}
		if k.Initramfs == "" {
			// Where the distribution's tool would write it.
			if s.IsFile("/usr/sbin/update-initramfs") {
				k.Initramfs = "/boot/initrd.img-" + v
			} else {
				k.Initramfs = "/boot/initramfs-" + v + ".img"
			}
		}
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out
}

func selinux(s guest.FS) string {
	b, err := s.ReadFile("/etc/selinux/config")
	if err != nil {
		return ""
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if v, ok := strings.CutPrefix(l, "SELINUX="); ok {
			return strings.Trim(v, `"'`)
		}
	}
	return ""
}

// kernelArgs reads the default entry's command line from grub.cfg.
func kernelArgs(s guest.FS) string {
	for _, p := range []string{"/boot/grub/grub.cfg", "/boot/grub2/grub.cfg"} {
		b, err := s.ReadFile(p)
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			f := strings.Fields(l)
			if len(f) >= 2 && (f[0] == "linux" || f[0] == "linux16" || f[0] == "linuxefi") {
				return strings.Join(f[2:], " ")
			}
		}
	}
	return ""
}
