package engine_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmconv/terraform-provider-vmconv/engine"
	"github.com/vmconv/terraform-provider-vmconv/engine/boottest"
	"github.com/vmconv/terraform-provider-vmconv/internal/acctest"
)

// TestGuestVMSpanningVG converts the VM whose root logical volume spans
// both its disks (span/db.vmx: the LVM guest with a second physical
// volume in vg0). The negative comes first and is what vmconv did before
// whole VMs: the boot disk inspected alone holds half a volume group, and
// no root file system is found on it. Converted as one VM, the guest is
// inspected with both disks, its root found on vg0, fixed, and it boots on
// virtio with both disks to multi-user with its network up. The VM is
// planned as terraform plans by default, inspecting, so this is also the
// multi-disk case of the apply taking the plan's inspection: it mounts the
// volume across both disks where the plan found it, without detecting the
// OS again. The sources are untouched.
func TestGuestVMSpanningVG(t *testing.T) {
	fx := acctest.GuestFixtures(t)
	vmx := vmFolder(t, fx, fx.Span.VMX)
	before := sumDir(t, filepath.Dir(vmx))
	e := newEngine(t)

	alone, err := e.Plan(context.Background(), engine.Request{
		Source: engine.SourceSpec{Path: filepath.Join(filepath.Dir(vmx), filepath.Base(fx.Span.Disks[0]))},
		Output: engine.OutputSpec{Path: filepath.Join(t.TempDir(), "db.qcow2")},
		Fixes:  engine.FixSpec{Enabled: true},
	}, engine.PlanOptions{Inspect: true})
	if err != nil {
		t.Fatalf("plan of the boot disk alone: %v", err)
	}
	if g := alone.Guest; g == nil || g.Guest == nil || g.Guest.HasOS() || !strings.Contains(g.Reason, "no operating system") {
		t.Fatalf("the boot disk alone was inspected as %+v: the fixture's root volume should span both disks", g)
	}

	bootOpts := boottest.Options{RequireNetwork: true}
	p, err := e.Plan(context.Background(), engine.Request{
		Source:   engine.SourceSpec{VMX: vmx},
		Output:   engine.OutputSpec{Dir: filepath.Join(t.TempDir(), "db")},
		Fixes:    engine.FixSpec{Enabled: true},
		BootTest: engine.BootTestSpec{Enabled: true, Options: bootOpts},
	}, engine.PlanOptions{Inspect: true})
	if err != nil {
		t.Fatal(err)
	}
	if g := p.Guest; g == nil || g.Guest == nil || g.Guest.Mountpoints["/"] != "/dev/vg0/root" {
		t.Fatalf("the VM's plan inspected %+v, want / on /dev/vg0/root", g)
	}
	if r := p.Stage(engine.StageInspect).Reason; !strings.Contains(r, "use this plan's inspection") || !strings.Contains(r, "all 2 disks") {
		t.Errorf("the plan's INSPECT line: %q", r)
	}
	res, err := e.Apply(context.Background(), p, nil, engine.ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	calls := map[string]int{}
	for _, c := range res.Appliance {
		calls[c.Name] = c.Calls
	}
	if calls["launch"] != 1 || calls["mount root"] != 1 || calls["inspect os"] != 0 {
		t.Errorf("the apply should mount the plan's guest in one appliance without detecting it again: %+v", res.Appliance)
	}
	if res.Guest == nil || res.Guest.Root != "/dev/vg0/root" || len(res.Guest.Disks) != 2 {
		t.Fatalf("inspected %+v, want root /dev/vg0/root across two disks", res.Guest)
	}
	if !res.BootTest.Passed() || len(res.Disks) != 2 {
		t.Fatalf("boot test %+v, %d disks", res.BootTest, len(res.Disks))
	}
	if after := sumDir(t, filepath.Dir(vmx)); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Error("the source VM changed")
	}
}
