package guest

import (
	"fmt"
	"strings"
)

// Info is what the INSPECT stage found in a guest.
type Info struct {
	// OS is "linux", "windows" or "none" for a disk without an operating
	// system (a data disk).
	OS          string `json:"os"`
	Distro      string `json:"distro,omitempty"`
	Version     string `json:"version,omitempty"`
	ProductName string `json:"product_name,omitempty"`
	Arch        string `json:"arch,omitempty"`
	Hostname    string `json:"hostname,omitempty"`
	Root        string `json:"root,omitempty"`
	// Mountpoints are where inspection found the root's file systems
	// (mountpoint to device): a later appliance on the same disks mounts
	// the guest from them without inspecting it again.
	Mountpoints     map[string]string `json:"mountpoints,omitempty"`
	Filesystems     []Filesystem      `json:"filesystems,omitempty"`
	LVM             []string          `json:"lvm,omitempty"`
	Firmware        string            `json:"firmware,omitempty"` // bios, uefi
	Bootloader      string            `json:"bootloader,omitempty"`
	InitramfsTool   string            `json:"initramfs_tool,omitempty"` // initramfs-tools, dracut
	NetworkStacks   []string          `json:"network_stacks,omitempty"`
	HypervisorTools []string          `json:"hypervisor_tools,omitempty"`
	Kernels         []Kernel          `json:"kernels,omitempty"`
	SELinux         string            `json:"selinux,omitempty"` // enforcing, permissive, disabled, ""
	PackageFormat   string            `json:"package_format,omitempty"`
	// KernelArgs are the kernel command line arguments of the default boot
	// entry, where they could be read.
	KernelArgs string   `json:"kernel_args,omitempty"`
	Encrypted  []string `json:"encrypted,omitempty"`
	Warnings   []string `json:"warnings,omitempty"`
	// Windows holds what only Windows guests have.
	Windows *Windows `json:"windows,omitempty"`
	// Disks are the slots the guest's disks had on the source hypervisor,
	// in the order they are attached to the appliance (sda, sdb...); empty
	// for a disk converted alone, which the appliance sees as sda.
	Disks []DiskSlot `json:"disks,omitempty"`
}

// DiskSlot is where a disk sat on the source VM's controllers.
type DiskSlot struct {
	Bus        string `json:"bus"` // scsi, sata, nvme, ide
	Controller int    `json:"controller"`
	Unit       int    `json:"unit"`
}

// String names the slot as VMware does: scsi0:1.
func (s DiskSlot) String() string { return fmt.Sprintf("%s%d:%d", s.Bus, s.Controller, s.Unit) }

// busOrder is the order a guest's firmware and kernel enumerate its
// controllers in, and so the order a VM's disks are listed and attached
// on KVM: VMware VMs boot from scsi0:0, or sata0:0 where SCSI is absent.
var busOrder = []string{"scsi", "sata", "nvme", "ide"}

func busRank(b string) int {
	for i, x := range busOrder {
		if x == b {
			return i
		}
	}
	return len(busOrder) // an unknown bus last
}

// Compare orders slots the way the guest enumerates its disks: by bus,
// then controller, then unit. It returns -1, 0 or +1.
func (s DiskSlot) Compare(o DiskSlot) int {
	if c := busRank(s.Bus) - busRank(o.Bus); c != 0 {
		return sign(c)
	}
	if s.Bus != o.Bus {
		return strings.Compare(s.Bus, o.Bus)
	}
	if c := s.Controller - o.Controller; c != 0 {
		return sign(c)
	}
	return sign(s.Unit - o.Unit)
}

func sign(n int) int {
	switch {
	case n < 0:
		return -1
	case n > 0:
		return 1
	}
	return 0
}

// Windows is what inspection found in a Windows guest's registry.
type Windows struct {
	SystemRoot        string   `json:"system_root"`
	CurrentControlSet string   `json:"current_control_set"`
	SystemHive        string   `json:"system_hive"`
	SoftwareHive      string   `json:"software_hive"`
	Build             string   `json:"build,omitempty"`
	InstallationType  string   `json:"installation_type,omitempty"` // Server, Client
	StorageDrivers    []string `json:"storage_drivers,omitempty"`   // boot-start storage services
	NetworkDrivers    []string `json:"network_drivers,omitempty"`
	VMwareTools       string   `json:"vmware_tools,omitempty"` // its uninstall command, when installed
	Hibernation       bool     `json:"hibernation,omitempty"`
}

// Kernel is an installed kernel and its initramfs.
type Kernel struct {
	Version   string `json:"version"`
	Image     string `json:"image"`
	Initramfs string `json:"initramfs,omitempty"`
}

// HasOS reports whether the disk holds an operating system.
func (i *Info) HasOS() bool { return i != nil && i.OS != "" && i.OS != "none" }

// FilesystemBy finds a file system by device.
func (i *Info) FilesystemBy(device string) (Filesystem, bool) {
	for _, f := range i.Filesystems {
		if f.Device == device {
			return f, true
		}
	}
	return Filesystem{}, false
}

// Has reports whether a list holds s.
func Has(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
