package inspect

import (
	"errors"
	"strings"
	"testing"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/engine/guest"
	"github.com/vmconv/terraform-provider-vmconv/engine/guest/guesttest"
)

func debian(files map[string]string) *guesttest.Session {
	base := map[string]string{
		"/boot/vmlinuz-6.1.0-50-amd64": "k", "/boot/initrd.img-6.1.0-50-amd64": "i",
		"/usr/sbin/update-initramfs": "", "/boot/grub/grub.cfg": "linux /boot/vmlinuz-6.1.0-50-amd64 root=/dev/sda1 ro quiet\n",
		"/usr/bin/vmtoolsd": "", "/etc/network/interfaces": "auto lo\niface lo inet loopback\nallow-hotplug ens192\niface ens192 inet dhcp\n",
	}
	for k, v := range files {
		base[k] = v
	}
	return &guesttest.Session{
		MemFS:    guesttest.New(base),
		RootList: []string{"/dev/sda1"},
		FSList:   []guest.Filesystem{{Device: "/dev/sda1", Type: "ext4", UUID: "u1"}, {Device: "/dev/sda2", Type: "swap", UUID: "u2"}},
		OS: map[string]guest.OSInfo{"/dev/sda1": {Type: "linux", Distro: "debian", Major: 12, Minor: 5, ProductName: "12.5",
			PackageFormat: "deb", Mountpoints: map[string]string{"/": "/dev/sda1"}}},
		PartTable: "msdos",
	}
}

func TestInspectLinux(t *testing.T) {
	s := debian(nil)
	info, err := Inspect(s, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Mounted != "/dev/sda1" {
		t.Error("root not mounted")
	}
	checks := map[string][2]string{
		"os": {info.OS, "linux"}, "version": {info.Version, "12.5"}, "firmware": {info.Firmware, "bios"},
		"bootloader": {info.Bootloader, "grub2"}, "initramfs": {info.InitramfsTool, "initramfs-tools"},
		"network": {strings.Join(info.NetworkStacks, ","), "ifupdown"}, "tools": {strings.Join(info.HypervisorTools, ","), "open-vm-tools"},
		"args": {info.KernelArgs, "root=/dev/sda1 ro quiet"}, "mountpoint": {info.Filesystems[0].Mountpoint, "/"},
		"recorded mountpoint": {info.Mountpoints["/"], "/dev/sda1"},
	}
	for k, v := range checks {
		if v[0] != v[1] {
			t.Errorf("%s = %q, want %q", k, v[0], v[1])
		}
	}
	if len(info.Kernels) != 1 || info.Kernels[0].Initramfs != "/boot/initrd.img-6.1.0-50-amd64" {
		t.Errorf("kernels %+v", info.Kernels)
	}
	// Another appliance mounts the guest from what was recorded, without
	// detecting the OS again (it could not: no roots are listed); without
	// a record, or when the recorded root does not mount, it detects it.
	again := debian(nil)
	again.RootList = nil
	info.Mountpoints["/"] = "/dev/sda9"
	if note, err := Mount(again, info); err != nil || note != "" || again.Mounted != "/dev/sda9" || again.Detections != 0 {
		t.Errorf("mounted from the inspection: %q, %v, %q, %d detections", note, err, again.Mounted, again.Detections)
	}
	again = debian(nil)
	again.MountAtErr = errors.New("mount /dev/sda9 on /: no such device")
	if note, err := Mount(again, info); err != nil || !strings.Contains(note, "no such device") || again.Mounted != "/dev/sda1" || again.Detections != 1 {
		t.Errorf("detected after the recorded root failed: %q, %v, %q, %d detections", note, err, again.Mounted, again.Detections)
	}
	again.RootList = nil
	if _, err := Mount(again, info); err == nil || !strings.Contains(err.Error(), "detecting the guest again") {
		t.Errorf("neither mounts: %v", err)
	}
	again = debian(nil)
	info.Mountpoints = nil
	if note, err := Mount(again, info); err != nil || note != "" || again.Mounted != "/dev/sda1" || again.Detections != 1 {
		t.Errorf("mounted by detection: %q, %v, %q, %d detections", note, err, again.Mounted, again.Detections)
	}
}

func TestInspectDetects(t *testing.T) {
	t.Run("uefi by ESP partition type", func(t *testing.T) {
		s := debian(nil)
		s.PartTable = "gpt"
		s.PartTypes = map[string]string{"/dev/sda1": "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"}
		if info, _ := Inspect(s, Options{}); info.Firmware != "uefi" {
			t.Errorf("firmware %q", info.Firmware)
		}
	})
	t.Run("dracut, netplan, networkd, NM, selinux", func(t *testing.T) {
		s := debian(map[string]string{
			"/usr/bin/dracut": "", "/etc/netplan/01.yaml": "network: {}", "/etc/systemd/network/a.network": "[Match]",
			"/etc/NetworkManager/system-connections/x.nmconnection": "", "/etc/selinux/config": "SELINUX=enforcing\n",
		})
		info, _ := Inspect(s, Options{})
		if info.InitramfsTool != "dracut" || info.SELinux != "enforcing" || strings.Join(info.NetworkStacks, ",") != "ifupdown,netplan,networkmanager,systemd-networkd" {
			t.Errorf("%+v", info)
		}
	})
	t.Run("ifupdown with only loopback is not a stack", func(t *testing.T) {
		s := debian(map[string]string{"/etc/network/interfaces": "auto lo\niface lo inet loopback\n"})
		if info, _ := Inspect(s, Options{}); len(info.NetworkStacks) != 0 {
			t.Errorf("stacks %v", info.NetworkStacks)
		}
	})
}

func TestInspectNoOrManyOS(t *testing.T) {
	t.Run("data disk", func(t *testing.T) {
		s := debian(nil)
		s.RootList = nil
		info, err := Inspect(s, Options{})
		if err != nil || info.OS != "none" || info.HasOS() {
			t.Fatalf("%+v %v", info, err)
		}
	})
	t.Run("LUKS", func(t *testing.T) {
		s := debian(nil)
		s.RootList = nil
		s.FSList = append(s.FSList, guest.Filesystem{Device: "/dev/sda3", Type: "crypto_LUKS"})
		_, err := Inspect(s, Options{})
		if fault.CodeOf(err) != fault.EncryptedGuest || !strings.Contains(err.Error(), "/dev/sda3") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("two roots", func(t *testing.T) {
		s := debian(nil)
		s.RootList = []string{"/dev/sda1", "/dev/sda2"}
		s.OS["/dev/sda2"] = guest.OSInfo{Type: "linux", Distro: "fedora", ProductName: "Fedora 39"}
		_, err := Inspect(s, Options{})
		fe, _ := fault.As(err)
		if fe == nil || fe.Code != fault.MultipleOSes || !strings.Contains(fe.Msg, "/dev/sda2 (Fedora 39)") || !strings.Contains(fe.Hint, `inspect { root = "/dev/sda1" }`) {
			t.Fatalf("got %v", err)
		}
		info, err := Inspect(s, Options{Root: "/dev/sda2"})
		if err != nil || info.Root != "/dev/sda2" {
			t.Fatalf("%+v %v", info, err)
		}
		if _, err := Inspect(s, Options{Root: "/dev/sdz9"}); fault.CodeOf(err) != fault.InvalidRequest {
			t.Fatalf("unknown root accepted: %v", err)
		}
	})
}
