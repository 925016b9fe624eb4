package validate

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
