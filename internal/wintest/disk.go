package wintest

import (
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/vmconv/terraform-provider-vmconv/internal/guestfsenv"
)

// PE returns a minimal PE32+ console executable for machine (0x8664 for
// x86-64, 0x14c for i386): enough for file(1), which libguestfs asks for
// cmd.exe's architecture.
func PE(machine uint16) []byte {
	b := make([]byte, 1024)
	copy(b, "MZ")
	binary.LittleEndian.PutUint32(b[0x3C:], 0x80)
	pe := b[0x80:]
	copy(pe, "PE\x00\x00")
	coff := pe[4:]
	binary.LittleEndian.PutUint16(coff[0:], machine)
	binary.LittleEndian.PutUint16(coff[2:], 1)     // sections
	binary.LittleEndian.PutUint16(coff[16:], 0xF0) // optional header size
	binary.LittleEndian.PutUint16(coff[18:], 0x22) // executable, large address aware
	opt := coff[20:]
	magic := uint16(0x20B)
	if machine == 0x14c {
		magic = 0x10B
		binary.LittleEndian.PutUint16(coff[16:], 0xE0)
		binary.LittleEndian.PutUint16(coff[18:], 0x102)
	}
	binary.LittleEndian.PutUint16(opt[0:], magic)
	binary.LittleEndian.PutUint32(opt[32:], 0x1000) // section alignment
	binary.LittleEndian.PutUint32(opt[36:], 0x200)  // file alignment
	binary.LittleEndian.PutUint16(opt[40:], 6)      // OS version 6.x
	binary.LittleEndian.PutUint16(opt[48:], 6)      // subsystem version
	binary.LittleEndian.PutUint32(opt[56:], 0x2000) // image size
	binary.LittleEndian.PutUint32(opt[60:], 0x400)  // headers size
	binary.LittleEndian.PutUint16(opt[68:], 3)      // console subsystem
	return b
}

// WindowsGuest describes the synthetic guest.
type WindowsGuest struct {
	ProductName string // "Windows Server 2019 Standard"
	Major       uint32 // 10
	Minor       uint32 // 0
	Build       string // "17763"
	Hostname    string
	Machine     uint16 // 0x8664
	// VMwareTools installs the VMware Tools services and their
	// uninstaller registration, as on a VMware guest.
	VMwareTools bool
	// BitLocker marks the volume as BitLocker-encrypted (its boot sector
	// OEM ID is -FVE-FS-).
	BitLocker bool
	// CorruptSystemHive damages the SYSTEM hive past its header, as a
	// failing disk or an interrupted write would.
	CorruptSystemHive bool
}

// SoftwareHive is the SOFTWARE hive inspection reads the version from.
func (g WindowsGuest) SoftwareHive() []byte {
	root := &Key{}
	cv := root.Path(`Microsoft\Windows NT\CurrentVersion`)
	cv.SZ("ProductName", g.ProductName).SZ("CurrentVersion", "6.3").SZ("CurrentBuildNumber", g.Build).SZ("CurrentBuild", g.Build).
		DWORD("CurrentMajorVersionNumber", g.Major).DWORD("CurrentMinorVersionNumber", g.Minor).SZ("InstallationType", "Server").
		SZ("EditionID", "ServerStandard").SZ("SystemRoot", `C:\Windows`)
	root.Path(`Microsoft\Windows\CurrentVersion\Uninstall`)
	root.Path(`Microsoft\Windows\CurrentVersion\RunOnce`)
	if g.VMwareTools {
		root.Path(`Microsoft\Windows\CurrentVersion\Uninstall\{VMWARE-TOOLS}`).SZ("DisplayName", "VMware Tools").
			SZ("UninstallString", `MsiExec.exe /X{VMWARE-TOOLS}`).SZ("DisplayVersion", "12.3.0")
		root.Path(`VMware, Inc.\VMware Tools`).SZ("InstallPath", `C:\Program Files\VMware\VMware Tools\`)
	}
	return Hive(root, "SOFTWARE")
}

// SystemHive is the SYSTEM hive: one control set with the storage and
// network drivers a VMware guest has, and none for virtio.
func (g WindowsGuest) SystemHive() []byte {
	root := &Key{}
	root.Path("Select").DWORD("Current", 1).DWORD("Default", 1).DWORD("LastKnownGood", 1).DWORD("Failed", 0)
	cs := root.Path("ControlSet001")
	cs.Path(`Control\ComputerName\ComputerName`).SZ("ComputerName", strings.ToUpper(g.Hostname))
	cs.Path(`Control\CriticalDeviceDatabase`)
	cs.Path(`Services\Tcpip\Parameters`).SZ("Hostname", g.Hostname).SZ("Domain", "")
	svc := func(name, group string, start uint32, image string) {
		cs.Path(`Services\`+name).DWORD("Type", 1).DWORD("Start", start).DWORD("ErrorControl", 1).SZ("Group", group).
			ExpandSZ("ImagePath", image)
	}
	svc("pvscsi", "SCSI miniport", 0, `System32\drivers\pvscsi.sys`)
	svc("LSI_SAS", "SCSI miniport", 0, `System32\drivers\lsi_sas.sys`)
	svc("storahci", "SCSI miniport", 0, `System32\drivers\storahci.sys`)
	svc("vmxnet3ndis6", "NDIS", 3, `System32\drivers\vmxnet3.sys`)
	if g.VMwareTools {
		cs.Path(`Services\VMTools`).DWORD("Type", 16).DWORD("Start", 2).ExpandSZ("ImagePath", `"C:\Program Files\VMware\VMware Tools\vmtoolsd.exe"`)
	}
	root.Path("MountedDevices").Binary(`\DosDevices\C:`, []byte{0x78, 0x56, 0x34, 0x12, 0, 0x10, 0, 0, 0, 0, 0, 0})
	return Hive(root, "SYSTEM")
}

// BuildDisk writes a raw disk image with an MBR partition table and one
// NTFS volume holding C:\Windows as inspection expects it. It runs
// guestfish (libguestfs, with ntfs-3g).
func BuildDisk(path string, g WindowsGuest) error {
	dir, err := os.MkdirTemp("", "wintest-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	system := g.SystemHive()
	if g.CorruptSystemHive {
		for i := 4096; i < len(system); i += 7 {
			system[i] ^= 0x5a
		}
	}
	files := map[string][]byte{"SOFTWARE": g.SoftwareHive(), "SYSTEM": system, "cmd.exe": PE(g.Machine),
		"pvscsi.sys": PE(g.Machine), "ntoskrnl.exe": PE(g.Machine), "bootmgr": []byte("BOOTMGR")}
	for n, b := range files {
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o644); err != nil {
			return err
		}
	}
	script := fmt.Sprintf(`sparse %q 256M
run
part-disk /dev/sda mbr
part-set-bootable /dev/sda 1 true
mkfs ntfs /dev/sda1
mount /dev/sda1 /
mkdir-p /Windows/System32/config
mkdir-p /Windows/System32/drivers
mkdir-p "/Program Files"
upload %s/SOFTWARE /Windows/System32/config/SOFTWARE
upload %s/SYSTEM /Windows/System32/config/SYSTEM
upload %s/cmd.exe /Windows/System32/cmd.exe
upload %s/ntoskrnl.exe /Windows/System32/ntoskrnl.exe
upload %s/pvscsi.sys /Windows/System32/drivers/pvscsi.sys
upload %s/bootmgr /bootmgr
umount-all
`, path, dir, dir, dir, dir, dir, dir)
	cmd := exec.Command("guestfish", "--")
	cmd.Stdin = strings.NewReader(script)
	cmd.Env = guestfsenv.Env()
	if out, err := cmd.CombinedOutput(); err != nil {
		os.Remove(path)
		return fmt.Errorf("guestfish: %v: %s", err, out)
	}
	if err := writeBootCode(path); err != nil {
		return err
	}
	if g.BitLocker {
		return bitlocker(path)
	}
	return nil
}

// SerialLine is what the disk's boot code writes to the first serial port:
// the prompt of Windows' Emergency Management Services console, which a
// Windows guest with EMS on writes once it is up.
const SerialLine = "vmconv synthetic Windows boot code: SAC>"

// writeBootCode puts x86 real-mode code in the MBR's bootstrap area that
// writes SerialLine to COM1 and halts, ignoring the power button. It
// stands in for Windows' boot in tests of the boot sequencing: the BIOS
// must find the disk on each bus and run it, and the domain must be shut
// down from outside.
func writeBootCode(path string) error {
	code := []byte{
		0xFA,       // cli
		0x31, 0xC0, // xor ax, ax
		0x8E, 0xD8, // mov ds, ax
		0xBE, 0x16, 0x7C, // mov si, 0x7c16 (the message)
		0xBA, 0xF8, 0x03, // mov dx, 0x3f8 (COM1)
		0xAC,       // 0x0b: lodsb
		0x84, 0xC0, // test al, al
		0x74, 0x03, // jz 0x13
		0xEE,       // out dx, al
		0xEB, 0xF8, // jmp 0x0b
		0xF4,       // 0x13: hlt
		0xEB, 0xFD, // jmp 0x13
	}
	code = append(code, SerialLine+"\r\n\x00"...)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.WriteAt(code, 0); err != nil {
		return err
	}
	return nil
}

// bitlocker gives the volume what BitLocker (Windows 7 and later) leaves
// on it, as libblkid recognises it: the -FVE-FS- boot sector and the
// offset of an FVE metadata block that carries the same signature.
func bitlocker(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	mbr := make([]byte, 512)
	if _, err := f.ReadAt(mbr, 0); err != nil {
		return err
	}
	start := int64(binary.LittleEndian.Uint32(mbr[446+8:])) * 512
	boot := make([]byte, 512)
	copy(boot, "\xeb\x58\x90-FVE-FS-")
	binary.LittleEndian.PutUint64(boot[176:], 1<<20)
	boot[510], boot[511] = 0x55, 0xAA
	if _, err := f.WriteAt(boot, start); err != nil {
		return err
	}
	fve := make([]byte, 64)
	copy(fve, "-FVE-FS-")
	binary.LittleEndian.PutUint16(fve[10:], 2)
	_, err = f.WriteAt(fve, start+1<<20)
	return err
}
