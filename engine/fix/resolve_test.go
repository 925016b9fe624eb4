package fix

import (
	"strings"
	"testing"

	"github.com/vmconv/terraform-provider-vmconv/engine/guest"
	"github.com/vmconv/terraform-provider-vmconv/engine/guest/guesttest"
)

func TestApplianceDevice(t *testing.T) {
	vm := &guest.Info{Disks: []guest.DiskSlot{{Bus: "scsi", Controller: 0, Unit: 0}, {Bus: "scsi", Controller: 0, Unit: 1}, {Bus: "sata", Controller: 0, Unit: 0}, {Bus: "nvme", Controller: 0, Unit: 0}}}
	alone := &guest.Info{}
	for _, tc := range []struct {
		info      *guest.Info
		dev, want string
	}{
		{alone, "/dev/sda1", "/dev/sda1"},
		{alone, "/dev/sdb1", ""},
		{alone, "/dev/disk/by-path/pci-0000:03:00.0-scsi-0:0:0:0-part2", "/dev/sda2"},
		{alone, "/dev/disk/by-path/pci-0000:03:00.0-scsi-0:0:1:0-part2", ""},
		{alone, "/dev/disk/by-path/pci-0000:02:02.0-ata-1-part1", "/dev/sda1"},
		{alone, "/dev/disk/by-id/wwn-0x6000c29a-part1", "/dev/sda1"},
		{alone, "/dev/nvme0n1p3", "/dev/sda3"},
		{vm, "/dev/sda1", "/dev/sda1"},
		{vm, "/dev/sdb1", "/dev/sdb1"},
		{vm, "/dev/sdc", "/dev/sdc"},
		{vm, "/dev/sdd2", "/dev/sdd2"},
		{vm, "/dev/sde1", ""},
		{vm, "/dev/nvme0n1p2", "/dev/sdd2"},
		{vm, "/dev/disk/by-path/pci-0000:03:00.0-scsi-0:0:1:0-part1", "/dev/sdb1"},
		{vm, "/dev/disk/by-path/pci-0000:02:02.0-ata-1", "/dev/sdc"},
		{vm, "/dev/disk/by-id/wwn-0x6000c29a-part1", ""},
	} {
		got, ok := applianceDevice(tc.info, tc.dev)
		if (tc.want == "") == ok || got != tc.want {
			t.Errorf("%s with %d disk(s): got %q %v, want %q", tc.dev, len(tc.info.Disks), got, ok, tc.want)
		}
	}
	for i := 0; i < 800; i++ {
		if letterIndex(letters(i)) != i {
			t.Fatalf("letters(%d) = %q does not round-trip", i, letters(i))
		}
	}
	if letters(0) != "a" || letters(25) != "z" || letters(26) != "aa" {
		t.Errorf("letters: %q %q %q", letters(0), letters(25), letters(26))
	}
}

// TestFstabAcrossDisks: a VM's second disk, named by device in fstab, is
// resolved to its UUID once the appliance has every disk attached.
func TestFstabAcrossDisks(t *testing.T) {
	info := debianInfo()
	info.Disks = []guest.DiskSlot{{Bus: "scsi", Controller: 0, Unit: 0}, {Bus: "scsi", Controller: 0, Unit: 1}}
	info.Filesystems = append(info.Filesystems,
		guest.Filesystem{Device: "/dev/sdb1", Type: "ext4", UUID: "0000aaaa-0000-4000-8000-0000000000b1", Mountpoint: "/srv"},
		guest.Filesystem{Device: "/dev/sdb2", Type: "swap", UUID: "0000aaaa-0000-4000-8000-0000000000b2"})
	m := guesttest.New(map[string]string{"/boot/initrd.img-6.1.0-50-amd64": "img", "/etc/fstab": "/dev/sda1 / ext4 defaults 0 1\n/dev/sdb1 /srv ext4 defaults 0 2\n/dev/sdb2 none swap sw 0 0\n"})
	m.Run = withVirtio
	res := runFixes(t, info, m, Options{Disabled: []string{"vmware-tools", "network"}})
	got := string(m.Files["/etc/fstab"])
	for _, want := range []string{"UUID=3f0b6a6e-1c1d-4a10-9a3e-000000000001 /", "UUID=0000aaaa-0000-4000-8000-0000000000b1 /srv", "UUID=0000aaaa-0000-4000-8000-0000000000b2 none swap"} {
		if !strings.Contains(got, want) {
			t.Errorf("fstab lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(strings.Join(res.Warnings, "\n"), "sdb") {
		t.Errorf("warned about a disk the VM has: %v", res.Warnings)
	}
}
