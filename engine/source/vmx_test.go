package source

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/engine/guest"
)

const vmxHead = `.encoding = "UTF-8"
config.version = "8"
virtualHW.version = "19"
displayName = "web"
guestOS = "debian12-64"
memSize = "2048"
numvcpus = "2"
firmware = "efi"
scsi0.present = "TRUE"
scsi0.virtualDev = "pvscsi"
ethernet0.present = "TRUE"
ethernet0.virtualDev = "vmxnet3"
ethernet0.networkName = "VM Network"
ethernet0.addressType = "static"
ethernet0.address = "00:50:56:01:02:03"
`

// writeVM writes a VM folder: the .vmx (vmxHead plus extra lines) and the
// named disk files, and returns the .vmx's path.
func writeVM(t *testing.T, dir, extra string, disks ...string) string {
	t.Helper()
	for _, d := range disks {
		if err := os.WriteFile(filepath.Join(dir, d), []byte("disk"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p := filepath.Join(dir, "web.vmx")
	if err := os.WriteFile(p, []byte(vmxHead+extra), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func disk(dev, file string) string {
	return fmt.Sprintf("%s.present = \"TRUE\"\n%s.fileName = %q\n", dev, dev, file)
}

func TestVMXLocate(t *testing.T) {
	dir := t.TempDir()
	extra := disk("scsi0:1", "web_1-000001.vmdk") + disk("scsi0:0", "web-000002.vmdk") +
		"sata0.present = \"TRUE\"\n" + disk("sata0:1", "data.vmdk") +
		"ide1:0.present = \"TRUE\"\nide1:0.deviceType = \"cdrom-image\"\nide1:0.fileName = \"/iso/debian.iso\"\n" +
		"scsi0:2.present = \"FALSE\"\nscsi0:2.fileName = \"gone.vmdk\"\n"
	p := writeVM(t, dir, extra, "web-000002.vmdk", "web_1-000001.vmdk", "data.vmdk")
	l, r, err := Select(Spec{VMX: p}, Env{}).Locate(context.Background(), false)
	if err != nil || r != nil {
		t.Fatalf("Locate: %v %v", err, r)
	}
	real, _ := filepath.EvalSymlinks(dir)
	want := []Disk{
		{Head: filepath.Join(real, "web-000002.vmdk"), Device: "scsi0:0", Slot: guest.DiskSlot{Bus: "scsi", Controller: 0, Unit: 0}},
		{Head: filepath.Join(real, "web_1-000001.vmdk"), Device: "scsi0:1", Slot: guest.DiskSlot{Bus: "scsi", Controller: 0, Unit: 1}},
		{Head: filepath.Join(real, "data.vmdk"), Device: "sata0:1", Slot: guest.DiskSlot{Bus: "sata", Controller: 0, Unit: 1}},
	}
	if fmt.Sprint(l.Disks) != fmt.Sprint(want) {
		t.Errorf("disks:\n got %v\nwant %v", l.Disks, want)
	}
	if l.Head != "" {
		t.Errorf("head %q: a VM of several disks names no single disk", l.Head)
	}
	h := l.Hardware
	if h == nil || h.VCPUs != 2 || h.MemoryMiB != 2048 || h.Firmware != "uefi" || h.GuestOS != "debian12-64" ||
		len(h.NICs) != 1 || h.NICs[0] != (NIC{MAC: "00:50:56:01:02:03", Model: "vmxnet3", Network: "VM Network"}) {
		t.Errorf("hardware %+v", h)
	}
	if s := strings.Join(h.Skipped, "; "); !strings.Contains(s, "ide1:0") || !strings.Contains(s, "scsi0:2") {
		t.Errorf("skipped %q", s)
	}
	if k := Select(Spec{VMX: p}, Env{}).Kind(); k != "vmx" {
		t.Errorf("kind %q", k)
	}
	// A VM folder reached through a symlink is the same folder.
	link := filepath.Join(t.TempDir(), "vmlink")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Select(Spec{VMX: filepath.Join(link, "web.vmx")}, Env{}).Locate(context.Background(), false); err != nil {
		t.Errorf("through a symlinked folder: %v", err)
	}
}

// A .vmx may name only files in its own folder, whatever route the name
// takes, and must name disks that are there.
func TestVMXHostile(t *testing.T) {
	outside := t.TempDir()
	secret := filepath.Join(outside, "secret.vmdk")
	os.WriteFile(secret, []byte("secret"), 0o600)
	var b strings.Builder
	for i := 0; i < 10000; i++ {
		b.WriteString(disk(fmt.Sprintf("scsi%d:%d", i/64%4, i%64), fmt.Sprintf("d%d.vmdk", i)))
	}
	many := b.String()
	for _, tc := range []struct {
		name  string
		extra string
		setup func(dir string)
		code  fault.Code
		says  string
	}{
		{"absolute path elsewhere", disk("scsi0:0", secret), nil, fault.PathOutsideSource, "outside the VM's folder"},
		{"climbs out", disk("scsi0:0", "../"+filepath.Base(outside)+"/secret.vmdk"), func(dir string) {
			os.Symlink(outside, filepath.Join(filepath.Dir(dir), filepath.Base(outside)))
		}, fault.PathOutsideSource, "outside the VM's folder"},
		{"symlink out", disk("scsi0:0", "web.vmdk"), func(dir string) { os.Symlink(secret, filepath.Join(dir, "web.vmdk")) }, fault.PathOutsideSource, "outside the VM's folder"},
		{"symlinked subfolder out", disk("scsi0:0", "sub/secret.vmdk"), func(dir string) { os.Symlink(outside, filepath.Join(dir, "sub")) }, fault.PathOutsideSource, "outside the VM's folder"},
		{"missing disk", disk("scsi0:0", "web.vmdk") + disk("scsi0:1", "gone.vmdk"), func(dir string) { os.WriteFile(filepath.Join(dir, "web.vmdk"), nil, 0o644) }, fault.SourceMissing, "disk scsi0:1 of the VM is missing"},
		{"no disks", "", nil, fault.InvalidRequest, "no hard disk"},
		{"10,000 disks", many, nil, fault.CorruptDescriptor, ""},
		{"duplicate unit", disk("scsi0:0", "a.vmdk") + "SCSI0:0.fileName = \"b.vmdk\"\n", nil, fault.CorruptDescriptor, "Line"},
		{"non-UTF-8", "scsi0:0.present = \"TRUE\"\nscsi0:0.fileName = \"w\xffb.vmdk\"\n", nil, fault.CorruptDescriptor, ""},
		{"two disks one file", disk("scsi0:0", "a.vmdk") + disk("scsi0:1", "a.vmdk"), nil, fault.CorruptDescriptor, "both name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "vm")
			os.Mkdir(dir, 0o755)
			if tc.setup != nil {
				tc.setup(dir)
			}
			p := writeVM(t, dir, tc.extra)
			_, _, err := Select(Spec{VMX: p}, Env{}).Locate(context.Background(), false)
			fe, ok := fault.As(err)
			if !ok || fe.Code != tc.code {
				t.Fatalf("got %v, want %s", err, tc.code)
			}
			text := fe.Error() + " " + fe.Hint + " " + fmt.Sprint(fe.Facts)
			if !strings.Contains(text, tc.says) || fe.File != p || fe.Hint == "" {
				t.Errorf("says %q (file %q, hint %q), want %q", text, fe.File, fe.Hint, tc.says)
			}
		})
	}
}

// A FIFO or a device named as the .vmx is refused without blocking.
func TestVMXNotRegular(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "web.vmx")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{fifo, "/dev/zero", t.TempDir()} {
		done := make(chan error, 1)
		go func() { _, _, err := Select(Spec{VMX: p}, Env{}).Locate(context.Background(), false); done <- err }()
		select {
		case err := <-done:
			if fault.CodeOf(err) != fault.SourceUnreadable {
				t.Errorf("%s: got %v", p, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: Locate blocked", p)
		}
	}
	if _, _, err := Select(Spec{VMX: filepath.Join(t.TempDir(), "none.vmx")}, Env{}).Locate(context.Background(), false); fault.CodeOf(err) != fault.SourceMissing {
		t.Errorf("missing .vmx: %v", err)
	}
}
