package engine_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmconv/terraform-provider-vmconv/engine"
	"github.com/vmconv/terraform-provider-vmconv/engine/boottest"
	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/internal/acctest"
)

// vmFolder links the fixture's two-disk VM into a fresh folder (hard
// links: the fixture is never written, and copies would cost gigabytes).
func vmFolder(t *testing.T, fx *acctest.Fixtures) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "web")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	es, err := os.ReadDir(filepath.Dir(fx.Path(fx.VM.VMX)))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		if err := os.Link(filepath.Join(filepath.Dir(fx.Path(fx.VM.VMX)), e.Name()), filepath.Join(dir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, filepath.Base(fx.VM.VMX))
}

// TestGuestVMTwoDisks converts the two-disk VMware VM (its boot disk a
// snapshot chain, /srv and swap on its second disk named /dev/sdb1 and
// /dev/sdb2 in fstab) from its .vmx as one guest. Without the fstab fix
// the guest's virtio boot stops in emergency mode, waiting for
// /dev/sdb1; with it, every fstab line names its file system by UUID on
// the right disk and the guest boots with both disks to multi-user with
// its network up. The sources are untouched.
func TestGuestVMTwoDisks(t *testing.T) {
	fx := acctest.GuestFixtures(t)
	vmx := vmFolder(t, fx)
	before := sumDir(t, filepath.Dir(vmx))
	e := newEngine(t)
	req := func(dir string, disabled ...string) engine.Request {
		r := engine.Request{
			Source:   engine.SourceSpec{VMX: vmx},
			Output:   engine.OutputSpec{Dir: dir},
			Fixes:    engine.FixSpec{Enabled: true},
			BootTest: engine.BootTestSpec{Enabled: true, Options: boottest.Options{RequireNetwork: true}},
		}
		r.Fixes.Disabled = disabled
		return r
	}
	out := t.TempDir()

	t.Run("without the fstab fix the boot stops in emergency mode", func(t *testing.T) {
		p, err := e.Plan(context.Background(), req(filepath.Join(out, "nofstab"), "fstab"), engine.PlanOptions{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = e.Apply(context.Background(), p, nil, engine.ApplyOptions{})
		fe, ok := fault.As(err)
		if !ok || fe.Code != fault.BootTestFailed || !strings.Contains(fe.Error()+fmt.Sprint(fe.Facts), boottest.ReasonEmergency) {
			t.Fatalf("got %v, want a boot test failed for %s", err, boottest.ReasonEmergency)
		}
		if _, err := os.Lstat(filepath.Join(out, "nofstab")); !os.IsNotExist(err) {
			t.Errorf("a failed apply published the VM: %v", err)
		}
	})

	dir := filepath.Join(out, "web")
	p, err := e.Plan(context.Background(), req(dir), engine.PlanOptions{Inspect: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Disks) != 2 || p.Hardware == nil || p.Hardware.VCPUs != 2 || p.Hardware.MemoryMiB != 1024 || len(p.Hardware.NICs) != 1 || p.Hardware.NICs[0].MAC != fx.MAC {
		t.Fatalf("planned %d disks, hardware %+v", len(p.Disks), p.Hardware)
	}
	if len(p.Disks[0].Source.Chain) != 2 {
		t.Errorf("the boot disk's chain has %d layers", len(p.Disks[0].Source.Chain))
	}
	// One inspection across both disks: the dry run resolves /srv on the
	// second disk to its UUID.
	if p.Guest == nil || p.Guest.Guest == nil || p.Guest.Guest.OS != "linux" || !fstabNames(p.Guest.Changes, "UUID="+fx.VM.SrvUUID) {
		t.Fatalf("plan-time inspection: %+v", p.Guest)
	}
	res, err := e.Apply(context.Background(), p, nil, engine.ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !res.BootTest.Passed() || len(res.Disks) != 2 || res.Fixes == nil || !fstabNames(res.Fixes.Changes, "UUID="+fx.VM.SrvUUID) {
		t.Fatalf("boot test %+v, %d disks", res.BootTest, len(res.Disks))
	}
	for _, d := range res.Disks {
		if _, err := os.Stat(d.Path); err != nil {
			t.Error(err)
		}
	}
	if after := sumDir(t, filepath.Dir(vmx)); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Error("the source VM changed")
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
