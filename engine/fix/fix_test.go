package fix

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/engine/guest"
	"github.com/vmconv/terraform-provider-vmconv/engine/guest/guesttest"
)

func td(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// debianInfo is the plain fixture guest as inspection reports it.
func debianInfo() *guest.Info {
	return &guest.Info{
		OS: "linux", Distro: "debian", Version: "12.0", PackageFormat: "deb", Root: "/dev/sda1",
		Firmware: "bios", Bootloader: "grub2", InitramfsTool: "initramfs-tools",
		HypervisorTools: []string{"open-vm-tools"},
		Kernels:         []guest.Kernel{{Version: "6.1.0-50-amd64", Image: "/boot/vmlinuz-6.1.0-50-amd64", Initramfs: "/boot/initrd.img-6.1.0-50-amd64"}},
		Filesystems: []guest.Filesystem{
			{Device: "/dev/sda1", Type: "ext4", UUID: "3f0b6a6e-1c1d-4a10-9a3e-000000000001", PartUUID: "5e11e001-01", Mountpoint: "/"},
			{Device: "/dev/sda2", Type: "swap", UUID: "5a5a5a5a-0000-4000-8000-000000000001", PartUUID: "5e11e001-02"},
			{Device: "/dev/sda3", Type: "vfat", PartUUID: "5e11e001-03"},
		},
	}
}

func runFixes(t *testing.T, info *guest.Info, m *guesttest.MemFS, o Options) *Result {
	t.Helper()
	res, err := Linux.Run(context.Background(), info, m, o)
	if err != nil {
		t.Fatal(err)
	}
	return &res.Result
}

func outcome(r *Result, name string) Outcome {
	for _, o := range r.Outcomes {
		if o.Name == name {
			return o
		}
	}
	return Outcome{}
}

// withVirtio answers lsinitramfs as if the image already had virtio, so a
// test can focus on other fixes.
func withVirtio(argv []string) (string, error) {
	if argv[0] == "lsinitramfs" || argv[0] == "lsinitrd" {
		return "usr/lib/modules/6.1.0-50-amd64/kernel/drivers/block/virtio_blk.ko\n", nil
	}
	return "", nil
}

func TestFstab(t *testing.T) {
	debianFstab := "/dev/sda1\t/\text4\terrors=remount-ro 0 1\n/dev/disk/by-path/pci-0000:03:00.0-scsi-0:0:0:0-part2 none swap sw 0 0\n/dev/sdb1 /data ext4 defaults 0 2\n"
	ubuntu := debianInfo()
	ubuntu.Filesystems = []guest.Filesystem{
		{Device: "/dev/sda1", Type: "vfat", UUID: "7A3C-11EF"},
		{Device: "/dev/sda2", Type: "ext4", UUID: "aaaa-root"},
		{Device: "/dev/sda3", Type: "swap", UUID: "bbbb-swap"},
	}
	rhel := debianInfo()
	rhel.Filesystems = []guest.Filesystem{
		{Device: "/dev/rhel/root", Type: "xfs", UUID: "r00t"},
		{Device: "/dev/rhel/swap", Type: "swap", UUID: "5wap"},
		{Device: "/dev/sda1", Type: "xfs", UUID: "b00t"},
		{Device: "/dev/sda2", Type: "vfat", UUID: "E5P0-0001"},
	}
	cases := []struct {
		name, fstab, mode string
		info              *guest.Info
		want              []string // substrings of the result
		wantNot           []string
		applies           bool
	}{
		{"debian stabilize-all", debianFstab, FstabStabilizeAll, debianInfo(),
			[]string{"UUID=3f0b6a6e-1c1d-4a10-9a3e-000000000001\t/\text4", "UUID=5a5a5a5a-0000-4000-8000-000000000001 none swap", "/dev/sdb1 /data"},
			[]string{"/dev/sda1", "by-path"}, true},
		{"debian bypath-only", debianFstab, FstabByPathOnly, debianInfo(),
			[]string{"/dev/sda1\t/", "UUID=5a5a5a5a-0000-4000-8000-000000000001 none swap"}, []string{"by-path"}, true},
		{"none", debianFstab, FstabNone, debianInfo(), []string{"/dev/sda1\t/"}, nil, false},
		{"ubuntu by-id and by-path", td(t, "fstab.ubuntu2204"), FstabStabilizeAll, ubuntu,
			[]string{"UUID=aaaa-root / ext4", "UUID=bbbb-swap none swap", "/dev/disk/by-uuid/7A3C-11EF /boot/efi", "# / was on /dev/sda2 during curtin installation"},
			[]string{"scsi-36000c29", "by-path"}, true},
		{"rhel keeps LVM names, fixes sda", td(t, "fstab.rhel8"), FstabStabilizeAll, rhel,
			[]string{"/dev/mapper/rhel-root   /", "UUID=b00t               /boot", "UUID=E5P0-0001               /boot/efi", "/dev/sdb1               /data"}, nil, true},
		{"already stable", "UUID=x / ext4 defaults 0 1\n", FstabStabilizeAll, debianInfo(), []string{"UUID=x"}, nil, false},
		{"partition without UUID gets PARTUUID", "/dev/sda3 /boot/efi vfat defaults 0 1\n", FstabStabilizeAll, debianInfo(), []string{"PARTUUID=5e11e001-03 /boot/efi"}, nil, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := guesttest.New(map[string]string{"/etc/fstab": tc.fstab})
			m.Run = withVirtio
			res := runFixes(t, tc.info, m, Options{FstabMode: tc.mode, Disabled: []string{"verify"}})
			got := string(m.Files["/etc/fstab"])
			if o := outcome(res, "fstab"); (o.Status == StatusApplied) != tc.applies {
				t.Fatalf("fstab outcome %+v, applies %v", o, tc.applies)
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("fstab lacks %q:\n%s", w, got)
				}
			}
			for _, w := range tc.wantNot {
				if strings.Contains(got, w) {
					t.Errorf("fstab still has %q:\n%s", w, got)
				}
			}
		})
	}
}

func TestFstabWarnsAboutOtherDisks(t *testing.T) {
	m := guesttest.New(map[string]string{"/etc/fstab": "/dev/sda1 / ext4 defaults 0 1\n/dev/sdb1 /data ext4 defaults 0 2\n"})
	m.Run = withVirtio
	res, err := Linux.Run(context.Background(), debianInfo(), m, Options{})
	if err == nil {
		t.Fatalf("verify accepted an fstab entry on a disk not converted: %+v", res.Outcomes)
	}
	if !strings.Contains(strings.Join(res.Warnings, "\n"), "/dev/sdb1") {
		t.Errorf("no warning about /dev/sdb1: %v", res.Warnings)
	}
	if !strings.Contains(err.Error(), "/dev/sdb1 on /data") {
		t.Errorf("verify error does not name the entry: %v", err)
	}
}

func TestGrub(t *testing.T) {
	t.Run("debian", func(t *testing.T) {
		m := guesttest.New(map[string]string{
			"/boot/grub/grub.cfg": td(t, "grub.cfg.debian"), "/etc/default/grub": td(t, "default-grub.debian"),
			"/boot/grub/device.map": "(hd0)\t/dev/sda\n", "/etc/fstab": "UUID=3f0b6a6e-1c1d-4a10-9a3e-000000000001 / ext4 defaults 0 1\n",
			"/boot/initrd.img-6.1.0-50-amd64": "img",
		})
		m.Run = withVirtio
		res := runFixes(t, debianInfo(), m, Options{})
		cfg := string(m.Files["/boot/grub/grub.cfg"])
		if strings.Contains(cfg, "root=/dev/sda1") || strings.Count(cfg, "root=UUID=3f0b6a6e-1c1d-4a10-9a3e-000000000001 ro") != 2 {
			t.Errorf("grub.cfg not fixed:\n%s", cfg)
		}
		if !strings.Contains(cfg, "search --no-floppy --fs-uuid --set=root 3f0b6a6e") {
			t.Error("unrelated lines changed")
		}
		if m.IsFile("/boot/grub/device.map") {
			t.Error("device.map not removed")
		}
		if d := string(m.Files["/etc/default/grub"]); !strings.Contains(d, "GRUB_DISABLE_LINUX_UUID=false") || strings.Contains(d, "UUID=true") {
			t.Errorf("/etc/default/grub:\n%s", d)
		}
		var paths []string
		for _, c := range res.Changes {
			if c.Fix == "grub" {
				paths = append(paths, c.Action+" "+c.Path)
			}
		}
		if got := strings.Join(paths, ","); got != "modified /boot/grub/grub.cfg,deleted /boot/grub/device.map,modified /etc/default/grub" {
			t.Errorf("recorded changes: %s", got)
		}
	})
	t.Run("rhel BLS with LVM root is already stable", func(t *testing.T) {
		info := debianInfo()
		info.Filesystems = []guest.Filesystem{{Device: "/dev/rhel/root", Type: "xfs", UUID: "r00t"}}
		m := guesttest.New(map[string]string{"/boot/loader/entries/rhel.conf": td(t, "bls.rhel8.conf"), "/boot/grub2/grub.cfg": "blscfg\n"})
		c := &Context{Ctx: context.Background(), Info: info, FS: m}
		if ok, why := (grub{}).Applicable(c); ok {
			t.Fatalf("applicable: %s", why)
		}
	})
	t.Run("BLS options root=/dev/sda2", func(t *testing.T) {
		info := debianInfo()
		info.Filesystems = append(info.Filesystems, guest.Filesystem{Device: "/dev/sda4", Type: "xfs", UUID: "x2"})
		m := guesttest.New(map[string]string{"/boot/loader/entries/e.conf": "options root=/dev/sda4 ro quiet\n", "/boot/grub2/grubenv": "kernelopts=root=/dev/sda4 ro\n"})
		c := &Context{Ctx: context.Background(), Info: info, FS: m}
		if err := (grub{}).Apply(c); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{"/boot/loader/entries/e.conf", "/boot/grub2/grubenv"} {
			if !strings.Contains(string(m.Files[p]), "root=UUID=x2 ro") {
				t.Errorf("%s: %s", p, m.Files[p])
			}
		}
	})
}

func netRun(t *testing.T, files map[string]string, keep bool) (*guesttest.MemFS, *Result) {
	t.Helper()
	m := guesttest.New(files)
	m.Run = withVirtio
	info := debianInfo()
	info.HypervisorTools = nil
	return m, runFixes(t, info, m, Options{KeepNetworkIdentity: keep, Disabled: []string{"verify"}})
}

func TestNetwork(t *testing.T) {
	t.Run("ifupdown maps by order", func(t *testing.T) {
		m, _ := netRun(t, map[string]string{"/etc/network/interfaces": td(t, "interfaces.debian"), "/etc/systemd/system/multi-user.target.wants/x": ""}, false)
		got := string(m.Files["/etc/network/interfaces"])
		for _, w := range []string{"auto /en*/1=ens192", "auto /en*/2=ens224", "auto lo", "iface ens192 inet static", "\taddress 10.20.30.40/24"} {
			if !strings.Contains(got, w) {
				t.Errorf("interfaces lacks %q:\n%s", w, got)
			}
		}
		if strings.Contains(got, "allow-hotplug") {
			t.Errorf("allow-hotplug kept (Debian's hotplug helper does not expand patterns):\n%s", got)
		}
		if d := string(m.Files[settleDropIn]); !strings.Contains(d, "ExecStartPre=-/bin/udevadm settle") {
			t.Errorf("no udev settle drop-in: %q", d)
		}
	})
	t.Run("udev MAC pin removed", func(t *testing.T) {
		m, res := netRun(t, map[string]string{"/etc/udev/rules.d/70-persistent-net.rules": td(t, "70-persistent-net.rules")}, false)
		if m.IsFile("/etc/udev/rules.d/70-persistent-net.rules") {
			t.Errorf("rules file with only a pin kept:\n%s", m.Files["/etc/udev/rules.d/70-persistent-net.rules"])
		}
		if o := outcome(res, "network"); o.Status != StatusApplied || !strings.Contains(o.Reason, "pins 1 NIC") {
			t.Errorf("outcome %+v", o)
		}
	})
	t.Run("systemd link and network", func(t *testing.T) {
		m, _ := netRun(t, map[string]string{
			"/etc/systemd/network/10-vmware-nic.link": "[Match]\nMACAddress=00:50:56:8a:3c:1e\n\n[Link]\nName=ens192\n",
			"/etc/systemd/network/20-ens192.network":  "[Match]\nName=ens192\n\n[Network]\nDHCP=ipv4\n",
		}, false)
		if m.IsFile("/etc/systemd/network/10-vmware-nic.link") {
			t.Error(".link pin kept")
		}
		if got := string(m.Files["/etc/systemd/network/20-ens192.network"]); !strings.Contains(got, "Name=en* eth*") || !strings.Contains(got, "DHCP=ipv4") {
			t.Errorf(".network:\n%s", got)
		}
	})
	t.Run("netplan", func(t *testing.T) {
		m, _ := netRun(t, map[string]string{"/etc/netplan/00-installer-config.yaml": td(t, "netplan.ubuntu2204.yaml")}, false)
		got := string(m.Files["/etc/netplan/00-installer-config.yaml"])
		want := "    ens160:\n      match:\n        name: \"en*\"\n      addresses:\n      - 192.168.10.21/24\n"
		if !strings.Contains(got, want) || strings.Contains(got, "macaddress") || strings.Contains(got, "set-name") || !strings.Contains(got, "  version: 2") {
			t.Errorf("netplan:\n%s", got)
		}
	})
	t.Run("NetworkManager keyfile and ifcfg", func(t *testing.T) {
		m, _ := netRun(t, map[string]string{
			"/etc/NetworkManager/system-connections/ens192.nmconnection": td(t, "ens192.nmconnection"),
		}, false)
		got := string(m.Files["/etc/NetworkManager/system-connections/ens192.nmconnection"])
		if strings.Contains(got, "interface-name") || strings.Contains(got, "mac-address") || !strings.Contains(got, "method=auto") {
			t.Errorf("keyfile:\n%s", got)
		}
		m, _ = netRun(t, map[string]string{"/etc/sysconfig/network-scripts/ifcfg-ens192": td(t, "ifcfg-ens192.rhel7")}, false)
		got = string(m.Files["/etc/sysconfig/network-scripts/ifcfg-ens192"])
		if strings.Contains(got, "HWADDR") || strings.Contains(got, "DEVICE=") || !strings.Contains(got, "BOOTPROTO=dhcp") {
			t.Errorf("ifcfg:\n%s", got)
		}
	})
	t.Run("several NICs in networkd are left with a warning", func(t *testing.T) {
		files := map[string]string{
			"/etc/systemd/network/a.network": "[Match]\nName=ens192\n[Network]\nDHCP=yes\n",
			"/etc/systemd/network/b.network": "[Match]\nName=ens224\n[Network]\nAddress=10.0.0.2/24\n",
		}
		m, res := netRun(t, files, false)
		if string(m.Files["/etc/systemd/network/a.network"]) != files["/etc/systemd/network/a.network"] {
			t.Error("multi-NIC networkd config was rewritten")
		}
		if !strings.Contains(strings.Join(res.Warnings, "\n"), "keep_network_identity") {
			t.Errorf("warnings: %v", res.Warnings)
		}
	})
	t.Run("keep identity", func(t *testing.T) {
		m, res := netRun(t, map[string]string{"/etc/network/interfaces": td(t, "interfaces.debian"), "/etc/udev/rules.d/70-persistent-net.rules": td(t, "70-persistent-net.rules")}, true)
		if o := outcome(res, "network"); o.Status != StatusNotApplicable {
			t.Errorf("outcome %+v", o)
		}
		if string(m.Files["/etc/network/interfaces"]) != td(t, "interfaces.debian") {
			t.Error("interfaces changed despite keep_network_identity")
		}
	})
}

func TestInitramfs(t *testing.T) {
	noVirtio := func(argv []string) (string, error) {
		if argv[0] == "lsinitramfs" || argv[0] == "lsinitrd" {
			return "usr/lib/modules/6.1.0-50-amd64/kernel/drivers/scsi/vmw_pvscsi.ko\n", nil
		}
		return "", nil
	}
	t.Run("initramfs-tools", func(t *testing.T) {
		m := guesttest.New(map[string]string{"/etc/initramfs-tools/modules": "vmw_pvscsi\nahci\n", "/boot/initrd.img-6.1.0-50-amd64": "old"})
		m.Run = noVirtio
		res := runFixes(t, debianInfo(), m, Options{Disabled: []string{"verify", "vmware-tools"}})
		if o := outcome(res, "initramfs"); o.Status != StatusApplied || !strings.Contains(o.Reason, "no virtio_blk") {
			t.Fatalf("outcome %+v", o)
		}
		mods := string(m.Files["/etc/initramfs-tools/modules"])
		for _, mod := range []string{"vmw_pvscsi", "virtio_pci", "virtio_blk", "virtio_scsi", "virtio_net"} {
			if !strings.Contains(mods, mod+"\n") {
				t.Errorf("modules lacks %s:\n%s", mod, mods)
			}
		}
		if !strings.Contains(strings.Join(m.Commands, "\n"), "update-initramfs -u -k 6.1.0-50-amd64") {
			t.Errorf("commands: %v", m.Commands)
		}
		// An image that is no cpio archive cannot be edited: it is
		// rebuilt, and the record says why.
		var why string
		for _, ch := range res.Changes {
			if ch.Action == "command" && strings.HasPrefix(ch.Command, "update-initramfs") {
				why = ch.Reason
			}
		}
		if !strings.Contains(why, "not supported for editing") {
			t.Errorf("the rebuild does not say why the image was not edited: %q", why)
		}
	})
	t.Run("dracut", func(t *testing.T) {
		info := debianInfo()
		info.InitramfsTool = "dracut"
		m := guesttest.New(map[string]string{"/boot/initrd.img-6.1.0-50-amd64": "old"})
		m.Run = noVirtio
		runFixes(t, info, m, Options{Disabled: []string{"verify", "vmware-tools"}})
		if conf := string(m.Files["/etc/dracut.conf.d/90-vmconv-virtio.conf"]); !strings.Contains(conf, `add_drivers+=" virtio_pci virtio_blk virtio_scsi virtio_net "`) {
			t.Errorf("dracut conf:\n%s", conf)
		}
		if !strings.Contains(strings.Join(m.Commands, "\n"), "dracut --force --add-drivers virtio_pci virtio_blk virtio_scsi virtio_net /boot/initrd.img-6.1.0-50-amd64 6.1.0-50-amd64") {
			t.Errorf("commands: %v", m.Commands)
		}
	})
	t.Run("already has virtio", func(t *testing.T) {
		m := guesttest.New(map[string]string{"/boot/initrd.img-6.1.0-50-amd64": "img"})
		m.Run = withVirtio
		res := runFixes(t, debianInfo(), m, Options{Disabled: []string{"vmware-tools"}})
		if o := outcome(res, "initramfs"); o.Status != StatusNotApplicable {
			t.Errorf("outcome %+v", o)
		}
	})
}

func TestUEFIFallback(t *testing.T) {
	info := debianInfo()
	info.Firmware = "uefi"
	t.Run("grub only", func(t *testing.T) {
		m := guesttest.New(map[string]string{"/boot/efi/EFI/debian/grubx64.efi": "MZgrub"})
		m.Run = withVirtio
		runFixes(t, info, m, Options{Disabled: []string{"verify"}})
		if string(m.Files["/boot/efi/EFI/BOOT/BOOTX64.EFI"]) != "MZgrub" {
			t.Errorf("fallback: %q", m.Files["/boot/efi/EFI/BOOT/BOOTX64.EFI"])
		}
	})
	t.Run("shim", func(t *testing.T) {
		m := guesttest.New(map[string]string{"/boot/efi/EFI/ubuntu/shimx64.efi": "MZshim", "/boot/efi/EFI/ubuntu/grubx64.efi": "MZgrub", "/boot/efi/EFI/ubuntu/grub.cfg": "search.fs_uuid x root\n"})
		m.Run = withVirtio
		runFixes(t, info, m, Options{Disabled: []string{"verify"}})
		for p, want := range map[string]string{"BOOTX64.EFI": "MZshim", "grubx64.efi": "MZgrub", "grub.cfg": "search.fs_uuid x root\n"} {
			if got := string(m.Files["/boot/efi/EFI/BOOT/"+p]); got != want {
				t.Errorf("%s: %q", p, got)
			}
		}
	})
	t.Run("fallback exists", func(t *testing.T) {
		m := guesttest.New(map[string]string{"/boot/efi/EFI/debian/grubx64.efi": "MZ", "/boot/efi/EFI/BOOT/BOOTX64.EFI": "MZ"})
		c := &Context{Ctx: context.Background(), Info: info, FS: m}
		if ok, _ := (uefiFallback{}).Applicable(c); ok {
			t.Error("applicable although the fallback exists")
		}
	})
}

func TestVMwareToolsAndSELinux(t *testing.T) {
	m := guesttest.New(map[string]string{"/var/lib/dpkg/status": "Package: open-vm-tools\nStatus: install ok installed\n", "/etc/selinux/config": "SELINUX=enforcing\n"})
	m.Run = withVirtio
	info := debianInfo()
	info.SELinux = "enforcing"
	runFixes(t, info, m, Options{Disabled: []string{"verify"}})
	if !strings.Contains(strings.Join(m.Commands, "\n"), "dpkg --purge open-vm-tools") {
		t.Errorf("commands %v", m.Commands)
	}
	if !m.IsFile("/.autorelabel") {
		t.Error("no relabel scheduled")
	}
	m = guesttest.New(map[string]string{"/var/lib/dpkg/status": "Package: open-vm-tools\nStatus: install ok installed\n"})
	m.Run = withVirtio
	runFixes(t, info, m, Options{KeepVMwareTools: true, Disabled: []string{"verify"}})
	if strings.Contains(strings.Join(m.Commands, "\n"), "dpkg") {
		t.Error("tools removed despite keep_vmware_tools")
	}
}

func TestDryRunWritesNothing(t *testing.T) {
	files := map[string]string{
		"/etc/fstab": "/dev/sda1 / ext4 defaults 0 1\n", "/boot/grub/grub.cfg": td(t, "grub.cfg.debian"),
		"/boot/grub/device.map": "(hd0) /dev/sda\n", "/etc/network/interfaces": td(t, "interfaces.debian"),
		"/var/lib/dpkg/status": "Package: open-vm-tools\nStatus: install ok installed\n", "/boot/initrd.img-6.1.0-50-amd64": "x",
	}
	m := guesttest.New(files)
	m.Run = func(argv []string) (string, error) {
		return "usr/lib/modules/x/kernel/drivers/scsi/vmw_pvscsi.ko\n", nil
	}
	res := runFixes(t, debianInfo(), m, Options{DryRun: true})
	for p, c := range files {
		if string(m.Files[p]) != c {
			t.Errorf("dry run changed %s", p)
		}
	}
	for _, c := range m.Commands {
		if !strings.HasPrefix(c, "lsinitramfs") {
			t.Errorf("dry run ran %q", c)
		}
	}
	for _, n := range []string{"vmware-tools", "network", "fstab", "grub", "initramfs"} {
		if o := outcome(res, n); o.Status != StatusPlanned {
			t.Errorf("%s: %+v", n, o)
		}
	}
	var fstabChange *guest.Change
	for i := range res.Changes {
		if res.Changes[i].Path == "/etc/fstab" {
			fstabChange = &res.Changes[i]
		}
	}
	if fstabChange == nil || !strings.Contains(fstabChange.After, "UUID=3f0b6a6e") || fstabChange.Before != files["/etc/fstab"] {
		t.Errorf("dry run did not record the fstab change: %+v", fstabChange)
	}
}

func TestVerify(t *testing.T) {
	noVirtio := func(argv []string) (string, error) { return "kernel/drivers/ata/ahci.ko\n", nil }
	t.Run("missing virtio is an error when the fix ran", func(t *testing.T) {
		m := guesttest.New(map[string]string{"/boot/initrd.img-6.1.0-50-amd64": "x", "/etc/fstab": "UUID=3f0b6a6e-1c1d-4a10-9a3e-000000000001 / ext4 defaults 0 1\n"})
		m.Run = noVirtio // update-initramfs "ran" but the image still lacks virtio
		_, err := Linux.Run(context.Background(), debianInfo(), m, Options{Disabled: []string{"vmware-tools"}})
		if fault.CodeOf(err) != fault.FixFailed || !strings.Contains(err.Error(), "virtio_blk") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("a problem a disabled fix would solve is a warning", func(t *testing.T) {
		m := guesttest.New(map[string]string{"/boot/initrd.img-6.1.0-50-amd64": "x", "/etc/fstab": "/dev/sda1 / ext4 defaults 0 1\n"})
		m.Run = noVirtio
		res, err := Linux.Run(context.Background(), debianInfo(), m, Options{Disabled: []string{"vmware-tools", "initramfs", "fstab"}})
		if err != nil {
			t.Fatal(err)
		}
		w := strings.Join(res.Warnings, "\n")
		if !strings.Contains(w, "virtio_blk (the initramfs fix is off)") || !strings.Contains(w, "/dev/sda1 on / by a name that does not exist on KVM (the fstab fix is off)") {
			t.Errorf("warnings: %s", w)
		}
	})
}

func TestOptionsValidate(t *testing.T) {
	if err := (Options{Disabled: []string{"grub", "nope"}}).Validate(); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("got %v", err)
	}
	if err := (Options{FstabMode: "sometimes"}).Validate(); err == nil {
		t.Error("bad fstab mode accepted")
	}
}

// A two-disk guest names its second disk's devices by controller in
// fstab, crypttab, the initramfs's resume setting and the kernel command
// line (grub.cfg and the defaults update-grub reads): each is rewritten to
// the UUID of the file system or container it names; a device on no disk
// of the VM is left, with a warning.
func TestDeviceReferencesAcrossDisks(t *testing.T) {
	info := debianInfo()
	info.Disks = []guest.DiskSlot{{Bus: "scsi", Unit: 0}, {Bus: "scsi", Unit: 1}}
	info.Filesystems = append(info.Filesystems,
		guest.Filesystem{Device: "/dev/sdb1", Type: "ext4", UUID: "0000aaaa-0000-4000-8000-0000000000b1", Mountpoint: "/srv"},
		guest.Filesystem{Device: "/dev/sdb2", Type: "swap", UUID: "0000aaaa-0000-4000-8000-0000000000b2"},
		guest.Filesystem{Device: "/dev/sdb3", Type: "crypto_LUKS", UUID: "0000aaaa-0000-4000-8000-0000000000b3"},
	)
	files := map[string]string{
		"/etc/fstab":                         "/dev/sda1 / ext4 errors=remount-ro 0 1\n/dev/sdb1 /srv ext4 defaults 0 2\n/dev/sdb2 none swap sw 0 0\n/dev/mapper/cryptdata /data ext4 defaults 0 2\n",
		"/etc/crypttab":                      "# <target name> <source device> <key file> <options>\ncryptdata\t/dev/sdb3\tnone\tluks\nother /dev/sdc1 none luks\n",
		"/etc/initramfs-tools/conf.d/resume": "RESUME=/dev/sdb2\n",
		"/boot/grub/grub.cfg":                "linux /boot/vmlinuz-6.1.0-50-amd64 root=/dev/sda1 ro resume=/dev/sdb2 quiet\n",
		"/etc/default/grub":                  "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet resume=/dev/sdb2\"\n",
		"/boot/initrd.img-6.1.0-50-amd64":    "img",
	}
	m := guesttest.New(files)
	m.Run = withVirtio
	res, err := Linux.Run(context.Background(), info, m, Options{Disabled: []string{"verify"}})
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string][]string{
		"/etc/fstab":                         {"UUID=0000aaaa-0000-4000-8000-0000000000b1 /srv", "UUID=0000aaaa-0000-4000-8000-0000000000b2 none swap", "/dev/mapper/cryptdata /data"},
		"/etc/crypttab":                      {"cryptdata\tUUID=0000aaaa-0000-4000-8000-0000000000b3\tnone\tluks", "other /dev/sdc1 none luks"},
		"/etc/initramfs-tools/conf.d/resume": {"RESUME=UUID=0000aaaa-0000-4000-8000-0000000000b2"},
		"/boot/grub/grub.cfg":                {"root=UUID=3f0b6a6e-1c1d-4a10-9a3e-000000000001 ro resume=UUID=0000aaaa-0000-4000-8000-0000000000b2 quiet"},
		"/etc/default/grub":                  {`"quiet resume=UUID=0000aaaa-0000-4000-8000-0000000000b2"`},
	} {
		got := string(m.Files[p])
		for _, w := range want {
			if !strings.Contains(got, w) {
				t.Errorf("%s lacks %q:\n%s", p, w, got)
			}
		}
		if strings.Contains(got, "/dev/sdb") {
			t.Errorf("%s still names /dev/sdb:\n%s", p, got)
		}
	}
	if !strings.Contains(strings.Join(res.Warnings, "\n"), "/dev/sdc1") {
		t.Errorf("no warning about /dev/sdc1, on no disk of the VM: %v", res.Warnings)
	}
	changed := map[string]bool{}
	for _, c := range res.Changes {
		changed[c.Path] = true
	}
	for p := range files {
		if !changed[p] && strings.HasPrefix(p, "/etc/") {
			t.Errorf("no change recorded for %s", p)
		}
	}
	// The initramfs already holds virtio, but also its own copies of
	// crypttab and the resume device: it is rebuilt so they are current.
	if o := outcome(&res.Result, "initramfs"); o.Status != StatusApplied || !strings.Contains(o.Reason, "/etc/crypttab") {
		t.Errorf("initramfs outcome %+v, want it rebuilt for the changed crypttab and resume", o)
	}
}
