package engine_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmconv/terraform-provider-vmconv/engine"
	"github.com/vmconv/terraform-provider-vmconv/engine/boottest"
	"github.com/vmconv/terraform-provider-vmconv/internal/acctest"
	"github.com/vmconv/terraform-provider-vmconv/internal/guestfsenv"
	"github.com/vmconv/terraform-provider-vmconv/internal/testimg"
)

// vmFolder links a fixture VM's folder (vmx names its .vmx) into a fresh
// folder (hard links: the fixture is never written, and copies would cost
// gigabytes).
func vmFolder(t *testing.T, fx *acctest.Fixtures, vmx string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "vm")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	src := filepath.Dir(fx.Path(vmx))
	es, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		if err := os.Link(filepath.Join(src, e.Name()), filepath.Join(dir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, filepath.Base(vmx))
}

// TestGuestVMTwoDisks converts the two-disk VMware VM (its boot disk a
// snapshot chain, /srv and swap on its second disk named /dev/sdb1 and
// /dev/sdb2 in fstab) from its .vmx as one guest: one inspection across
// both disks resolves the fstab lines to UUIDs on the right disk (the plan
// is made without inspecting, as the appliance launch costs a minute or
// two of CI here), and the guest boots on virtio with both disks to multi-user with its
// network up (a /srv that does not mount stops the boot in emergency mode
// instead). The negative is the same converted VM with only its fstab put
// back as VMware left it: its virtio boot stops in emergency mode, waiting
// for /dev/sdb1. The sources are untouched.
func TestGuestVMTwoDisks(t *testing.T) {
	fx := acctest.GuestFixtures(t)
	vmx := vmFolder(t, fx, fx.VM.VMX)
	before := sumDir(t, filepath.Dir(vmx))
	e := newEngine(t)
	out := t.TempDir()
	dir := filepath.Join(out, "web")
	bootOpts := boottest.Options{RequireNetwork: true}
	p, err := e.Plan(context.Background(), engine.Request{
		Source:   engine.SourceSpec{VMX: vmx},
		Output:   engine.OutputSpec{Dir: dir},
		Fixes:    engine.FixSpec{Enabled: true},
		BootTest: engine.BootTestSpec{Enabled: true, Options: bootOpts},
	}, engine.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Disks) != 2 || p.Hardware == nil || p.Hardware.VCPUs != 2 || p.Hardware.MemoryMiB != 1024 || len(p.Hardware.NICs) != 1 || p.Hardware.NICs[0].MAC != fx.MAC {
		t.Fatalf("planned %d disks, hardware %+v", len(p.Disks), p.Hardware)
	}
	if len(p.Disks[0].Source.Chain) != 2 {
		t.Errorf("the boot disk's chain has %d layers", len(p.Disks[0].Source.Chain))
	}
	res, err := e.Apply(context.Background(), p, nil, engine.ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !res.BootTest.Passed() || len(res.Disks) != 2 || res.Fixes == nil || !fstabNames(res.Fixes.Changes, "UUID="+fx.VM.SrvUUID) {
		t.Fatalf("boot test %+v, %d disks", res.BootTest, len(res.Disks))
	}
	if after := sumDir(t, filepath.Dir(vmx)); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Error("the source VM changed")
	}
	// Where the appliance's time went is in the result and the Markdown.
	calls := map[string]float64{}
	for _, c := range res.Appliance {
		calls[c.Name] = c.Seconds
		t.Logf("appliance: %-28s %3d calls %7.1f s", c.Name, c.Calls, c.Seconds)
	}
	// The initramfs is edited, not rebuilt: the guest's modprobe and
	// depmod resolve the drivers (one shell), and the image is written.
	if calls["launch"] <= 0 || calls["inspect os"] <= 0 || calls["command sh"] <= 0 || calls["write file"] <= 0 || calls["command update-initramfs"] != 0 {
		t.Errorf("the appliance profile lacks the launch, the inspection or the initramfs edit, or shows a rebuild: %+v", res.Appliance)
	}
	if md, err := os.ReadFile(filepath.Join(dir, engine.VMMarkdownName)); err != nil || !strings.Contains(string(md), "| command sh | 1 |") {
		t.Errorf("the Markdown report has no appliance table (%v):\n%s", err, md)
	}

	// boot_test changed after the apply: the published VM boots again, on
	// virtio-scsi this time, and its report records the new test.
	sums := sumDir(t, dir)
	scsi := bootOpts
	scsi.DiskBus = "scsi"
	rerun, err := e.RerunVMBootTest(context.Background(), engine.Request{Output: engine.OutputSpec{Dir: dir}, BootTest: engine.BootTestSpec{Enabled: true, Options: scsi}})
	if err != nil || !rerun.Passed() || rerun.DiskBus != "scsi" {
		t.Fatalf("boot test again on virtio-scsi: %v, %+v", err, rerun)
	}
	rep, err := engine.ReadVMReport(dir)
	if err != nil || rep.Result.BootTest.DiskBus != "scsi" || rep.Plan.Request.BootTest.DiskBus != "scsi" {
		t.Fatalf("the report after the re-run: %v, %+v", err, rep)
	}
	for name, sum := range sumDir(t, dir) {
		if name != engine.VMReportName && name != engine.VMMarkdownName && sums[name] != sum {
			t.Errorf("the re-run changed %s", name)
		}
	}
	if md, err := os.ReadFile(filepath.Join(dir, engine.VMMarkdownName)); err != nil || !strings.Contains(string(md), "## Boot test: passed") ||
		!strings.Contains(string(md), ", scsi disk, ") || !strings.Contains(string(md), "## Fixes") {
		t.Errorf("the Markdown report after the re-run (%v):\n%s", err, md)
	}

	// The negative: overlays of the converted disks, the fstab put back as
	// it was before the fix, booted the same way.
	var original string
	for _, c := range res.Fixes.Changes {
		if c.Path == "/etc/fstab" && c.Before != "" {
			original = c.Before
		}
	}
	if !strings.Contains(original, "/dev/sdb1") {
		t.Fatalf("the fix recorded no original fstab naming /dev/sdb1: %q", original)
	}
	neg := t.TempDir()
	var overlays []string
	for i, d := range res.Disks {
		ov := filepath.Join(neg, fmt.Sprintf("disk%d.qcow2", i))
		if err := testimg.Run("qemu-img", "create", "-q", "-f", "qcow2", "-b", d.Path, "-F", "qcow2", ov); err != nil {
			t.Fatal(err)
		}
		overlays = append(overlays, ov)
	}
	fstab := filepath.Join(neg, "fstab")
	os.WriteFile(fstab, []byte(original), 0o644)
	// The same guestfish fetches the rebuilt initramfs, whose SHA-256 the
	// fix computed inside the appliance.
	initrd := res.Guest.Kernels[0].Initramfs
	gotInitrd := filepath.Join(neg, "initrd")
	gf := exec.Command("guestfish", "--format=qcow2", "-a", overlays[0], "-a", overlays[1], "-m", "/dev/sda1", "upload", fstab, "/etc/fstab",
		":", "download", initrd, gotInitrd)
	gf.Env = guestfsenv.Env()
	if b, err := gf.CombinedOutput(); err != nil {
		t.Fatalf("guestfish: %v\n%s", err, b)
	}
	var recorded, how string
	for _, c := range res.Fixes.Changes {
		if c.Path == initrd && c.Fix == "initramfs" {
			recorded, how = c.AfterSHA256, c.Reason
		}
	}
	if got := sumFile(t, gotInitrd); recorded != got {
		t.Errorf("the report says the edited %s has SHA-256 %q; the file has %s", initrd, recorded, got)
	}
	if !strings.Contains(how, "virtio_blk.ko") || !strings.Contains(how, "without rebuilding it") {
		t.Errorf("the initramfs change does not say the drivers were added to the image: %q", how)
	}
	// initramfs-tools' own lister reads the edited image as one archive
	// (the guest's lsinitramfs, and so the verify fix, see the drivers).
	list, err := exec.Command("lsinitramfs", gotInitrd).CombinedOutput()
	if err != nil {
		t.Fatalf("lsinitramfs of the edited image: %v\n%s", err, list)
	}
	for _, m := range []string{"/virtio_blk.ko\n", "/virtio_pci.ko\n", "/modules.dep\n", "/modules.alias.bin\n"} {
		if n := strings.Count(string(list), m); n != 1 {
			t.Errorf("the edited image lists %s %d times", strings.TrimSpace(m), n)
		}
	}
	r, err := e.BootTest(context.Background(), overlays[0], "qcow2", res.Guest, bootOpts, filepath.Join(neg, "console.log"), overlays[1])
	if err != nil {
		t.Fatal(err)
	}
	if r.Passed() || r.Reason != boottest.ReasonEmergency {
		t.Errorf("with VMware's fstab the boot ended %s (%s): %s, want %s", r.Status, r.Reason, r.Detail, boottest.ReasonEmergency)
	}
}

// fstabNames says whether a change to /etc/fstab mounts /srv by s.
func fstabNames(cs []engine.GuestChange, s string) bool {
	for _, c := range cs {
		if c.Path != "/etc/fstab" {
			continue
		}
		for _, l := range strings.Split(c.After, "\n") {
			if f := strings.Fields(l); len(f) > 1 && f[0] == s && f[1] == "/srv" {
				return true
			}
		}
	}
	return false
}
