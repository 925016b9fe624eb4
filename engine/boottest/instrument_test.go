package boottest

import (
	"strings"
	"testing"

	"github.com/vmconv/terraform-provider-vmconv/engine/guest/guesttest"
)

const debianGrub = "menuentry 'Debian' {\n\tlinux\t/boot/vmlinuz-6.1.0-50-amd64 root=UUID=x ro  quiet\n\tinitrd\t/boot/initrd.img-6.1.0-50-amd64\n}\n"

func TestInstrument(t *testing.T) {
	m := guesttest.New(map[string]string{"/boot/grub/grub.cfg": debianGrub})
	if err := Instrument(m, "n0nce"); err != nil {
		t.Fatal(err)
	}
	cfg := string(m.Files["/boot/grub/grub.cfg"])
	if !strings.Contains(cfg, "root=UUID=x ro  quiet console=tty0 console=ttyS0,115200n8 rd.retry=60\n") {
		t.Errorf("grub.cfg:\n%s", cfg)
	}
	script := string(m.Files[markerPath])
	if !strings.Contains(script, `echo "VMCONV-BOOT-MARKER n0nce ip=`) || strings.Contains(script, "mv -f") {
		t.Errorf("script:\n%s", script)
	}
	if m.Links[wantsPath] != unitPath {
		t.Error("unit not enabled")
	}
	if _, ok := m.Files["/boot/grub/grub.cfg"+origSuffix]; ok {
		t.Error("throwaway overlays need no backup")
	}
}

func TestInstrumentOnceRestores(t *testing.T) {
	grubenv := "# GRUB Environment Block\nkernelopts=root=/dev/mapper/rhel-root ro\n" + strings.Repeat("#", 80)
	m := guesttest.New(map[string]string{"/boot/grub2/grub.cfg": "blscfg\n", "/boot/loader/entries/a.conf": "options root=/dev/mapper/rhel-root ro\n", "/boot/grub2/grubenv": grubenv})
	if err := InstrumentOnce(m, "n0nce"); err != nil {
		t.Fatal(err)
	}
	if got := string(m.Files["/boot/grub2/grubenv"]); len(got) != len(grubenv) || !strings.Contains(got, "ro console=tty0") {
		t.Errorf("grubenv size %d (want %d):\n%s", len(got), len(grubenv), got)
	}
	script := string(m.Files[markerPath])
	for _, p := range []string{"/boot/loader/entries/a.conf", "/boot/grub2/grubenv"} {
		if !strings.Contains(script, "mv -f "+p+origSuffix+" "+p) || string(m.Files[p+origSuffix]) == "" {
			t.Errorf("%s is not restored:\n%s", p, script)
		}
	}
	if !strings.Contains(script, `rm -f `+wantsPath+" "+unitPath+` "$0"`) {
		t.Errorf("marker does not remove itself:\n%s", script)
	}
}

func TestInstrumentNeedsAKernelLine(t *testing.T) {
	if err := Instrument(guesttest.New(map[string]string{"/etc/fstab": ""}), "x"); err == nil {
		t.Fatal("instrumented a guest with no boot configuration")
	}
}

func TestInstrumentPhasePowersOffAfterRestoring(t *testing.T) {
	for _, tc := range []struct {
		plant    func(*guesttest.MemFS, string) error
		poweroff bool
	}{{func(m *guesttest.MemFS, n string) error { return InstrumentOnce(m, n) }, false}, {func(m *guesttest.MemFS, n string) error { return InstrumentPhase(m, n) }, true}} {
		m := guesttest.New(map[string]string{"/boot/grub/grub.cfg": debianGrub})
		if err := tc.plant(m, "n0nce"); err != nil {
			t.Fatal(err)
		}
		script := string(m.Files[markerPath])
		off := strings.Index(script, "systemctl --no-block poweroff")
		if (off >= 0) != tc.poweroff {
			t.Fatalf("poweroff in script = %v, want %v:\n%s", off >= 0, tc.poweroff, script)
		}
		// The guest restores its boot configuration before it goes down.
		if tc.poweroff && off < strings.Index(script, "mv -f /boot/grub/grub.cfg"+origSuffix) {
			t.Errorf("powers off before restoring:\n%s", script)
		}
	}
}

func TestConsoleAddition(t *testing.T) {
	for _, tc := range []struct{ name, cmdline, want string }{
		{"no console", "root=/dev/sda1 ro quiet", consoleArgs},
		{"serial console last", "root=/dev/sda1 ro console=ttyS0,115200 quiet", ""},
		{"serial console without options", "root=/dev/vda1 console=ttyS0", ""},
		{"cloud image: tty1 then ttyS0", "root=LABEL=cloudimg-rootfs console=tty1 console=ttyS0", ""},
		// ttyS0 is named but tty0 takes /dev/console: ttyS0 is named
		// again, at the guest's own speed.
		{"serial console not last", "root=/dev/sda1 console=ttyS0,9600n8 console=tty0", "console=ttyS0,9600n8"},
		{"another serial port", "root=/dev/sda1 console=ttyS1,115200", consoleArgs},
		{"not a console argument", "root=/dev/sda1 netconsole=ttyS0 xconsole=ttyS0", consoleArgs},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := consoleAddition(tc.cmdline); got != tc.want {
				t.Errorf("consoleAddition(%q) = %q, want %q", tc.cmdline, got, tc.want)
			}
		})
	}
}

// serialGrub is what grub-mkconfig writes for a guest whose serial console
// is configured (GRUB_TERMINAL=serial, console=ttyS0,115200 in
// GRUB_CMDLINE_LINUX): every linux line already has it.
const serialGrub = `serial --unit=0 --speed=115200
terminal_input serial
terminal_output serial
menuentry 'Debian GNU/Linux' --class debian {
	linux	/boot/vmlinuz-6.1.0-50-amd64 root=/dev/sda1 ro console=ttyS0,115200 quiet
	initrd	/boot/initrd.img-6.1.0-50-amd64
}
submenu 'Advanced options for Debian GNU/Linux' {
	menuentry 'Debian GNU/Linux, with Linux 6.1.0-50-amd64 (recovery mode)' {
		linux	/boot/vmlinuz-6.1.0-50-amd64 root=/dev/sda1 ro single console=ttyS0,115200
		initrd	/boot/initrd.img-6.1.0-50-amd64
	}
}
`

// A guest that already has its serial console is boot-tested as it is: its
// boot configuration is left alone and the marker is planted.
func TestInstrumentGuestWithSerialConsole(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		plant func(*guesttest.MemFS) error
	}{
		{"grub.cfg, throwaway overlay", map[string]string{"/boot/grub/grub.cfg": serialGrub}, func(m *guesttest.MemFS) error { return Instrument(m, "n0nce") }},
		{"grub.cfg, domain disk", map[string]string{"/boot/grub/grub.cfg": serialGrub}, func(m *guesttest.MemFS) error { return InstrumentOnce(m, "n0nce") }},
		{"BLS entry and grubenv", map[string]string{
			"/boot/grub2/grub.cfg":        "blscfg\n",
			"/boot/loader/entries/a.conf": "options root=/dev/mapper/rhel-root ro console=ttyS0,115200n8\n",
			"/boot/grub2/grubenv":         "# GRUB Environment Block\nkernelopts=root=/dev/mapper/rhel-root ro console=ttyS0,115200n8\n" + strings.Repeat("#", 80),
		}, func(m *guesttest.MemFS) error { return InstrumentPhase(m, "n0nce") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := guesttest.New(tc.files)
			if err := tc.plant(m); err != nil {
				t.Fatal(err)
			}
			for p, want := range tc.files {
				if got := string(m.Files[p]); got != want {
					t.Errorf("%s changed:\n%s", p, got)
				}
				if _, ok := m.Files[p+origSuffix]; ok {
					t.Errorf("%s backed up although unchanged", p)
				}
			}
			script := string(m.Files[markerPath])
			if !strings.Contains(script, `echo "VMCONV-BOOT-MARKER n0nce ip=`) || strings.Contains(script, "mv -f") {
				t.Errorf("script:\n%s", script)
			}
			if m.Links[wantsPath] != unitPath {
				t.Error("marker unit not enabled")
			}
		})
	}
}

// A serial console named before tty0 is named again, at its own speed.
func TestInstrumentMakesTheSerialConsolePrimary(t *testing.T) {
	cfg := "menuentry 'Debian' {\n\tlinux\t/boot/vmlinuz root=/dev/sda1 ro console=ttyS0,38400 console=tty0\n}\n"
	m := guesttest.New(map[string]string{"/boot/grub/grub.cfg": cfg})
	if err := Instrument(m, "n0nce"); err != nil {
		t.Fatal(err)
	}
	if got := string(m.Files["/boot/grub/grub.cfg"]); !strings.Contains(got, "console=ttyS0,38400 console=tty0 console=ttyS0,38400\n") || strings.Contains(got, "115200") {
		t.Errorf("grub.cfg:\n%s", got)
	}
}

// A grubenv with no room for the console is not a command line the test
// can use.
func TestInstrumentFullGrubenvIsNotFound(t *testing.T) {
	m := guesttest.New(map[string]string{"/boot/grub2/grubenv": "# GRUB Environment Block\nkernelopts=root=/dev/sda1 ro\n"})
	if err := Instrument(m, "x"); err == nil {
		t.Fatal("instrumented a guest whose only command line could not take the console")
	}
}

// A VM's disks are all attached, in its order, on the boot test's bus,
// the first one booting.
func TestQemuArgsDisks(t *testing.T) {
	m := Machine{Accel: "tcg", MoreDisks: []string{"/w/d1.qcow2", "/w/d2.qcow2"}}
	for bus, want := range map[string][]string{
		"virtio": {"virtio-blk-pci,drive=disk0,bootindex=1", "virtio-blk-pci,drive=disk1", "virtio-blk-pci,drive=disk2"},
		"sata":   {"ide-hd,drive=disk0,bus=ide.0,bootindex=1", "ide-hd,drive=disk1,bus=ide.1", "ide-hd,drive=disk2,bus=ide.2"},
		"scsi":   {"virtio-scsi-pci,id=scsi0", "scsi-hd,drive=disk0,bus=scsi0.0,scsi-id=0,bootindex=1", "scsi-hd,drive=disk2,bus=scsi0.0,scsi-id=2"},
	} {
		args, err := qemuArgs(m, "/w/d0.qcow2", "/w", "/w/console.log", withDefaults(Options{DiskBus: bus}, "tcg"))
		if err != nil {
			t.Fatal(err)
		}
		line := strings.Join(args, " ")
		for _, w := range append(want, "file=/w/d0.qcow2,format=qcow2,if=none,id=disk0", "file=/w/d2.qcow2,format=qcow2,if=none,id=disk2") {
			if !strings.Contains(line, w) {
				t.Errorf("%s: no %q in\n%s", bus, w, line)
			}
		}
		if strings.Count(line, "bootindex") != 1 {
			t.Errorf("%s: more than one boot disk: %s", bus, line)
		}
	}
	m.MoreDisks = make([]string, 6)
	if _, err := qemuArgs(m, "/w/d0.qcow2", "/w", "/w/c.log", withDefaults(Options{DiskBus: "sata"}, "tcg")); err == nil {
		t.Error("seven disks on six SATA ports")
	}
}
