package engine

import (
	"strings"
	"testing"

	"github.com/vmconv/terraform-provider-vmconv/engine/guest"
	"github.com/vmconv/terraform-provider-vmconv/engine/source"
)

func reusePlan(how string, info *guest.Info) *Plan {
	return &Plan{
		Guest:  &GuestPlan{How: how, Guest: info},
		Stages: []StagePlan{{StageInspect, true, ""}, {StageFix, true, ""}},
	}
}

func linuxInfo() *guest.Info {
	return &guest.Info{OS: "linux", Distro: "debian", Root: "/dev/sda1",
		Mountpoints: map[string]string{"/": "/dev/sda1", "/boot": "/dev/sda2"}}
}

// The apply takes the plan's inspection only where the disks are the ones
// inspected and the inspection says where the guest mounts.
func TestPlanInspection(t *testing.T) {
	old := linuxInfo()
	old.Mountpoints = nil
	deferred := reusePlan("inspected", linuxInfo())
	deferred.Source.Deferred = true
	warm := reusePlan("cached", linuxInfo())
	warm.Request.Source.VSphere = &source.VSphere{Warm: &source.Warm{}}
	otherRoot := reusePlan("inspected", linuxInfo())
	otherRoot.Request.Inspect.Root = "/dev/sdb1"
	for name, c := range map[string]struct {
		p    *Plan
		want bool
	}{
		"inspected":             {reusePlan("inspected", linuxInfo()), true},
		"cached":                {reusePlan("cached", linuxInfo()), true},
		"data disk":             {reusePlan("inspected", &guest.Info{OS: "none"}), true},
		"not inspected":         {&Plan{Guest: &GuestPlan{How: "skipped", Reason: "plan_inspection = false"}}, false},
		"no guest plan":         {&Plan{}, false},
		"no mountpoints (old)":  {reusePlan("cached", old), false},
		"planned from metadata": {deferred, false},
		"warm cutover":          {warm, false},
		"another root asked":    {otherRoot, false},
	} {
		info, why := planInspection(c.p)
		if (info != nil) != c.want {
			t.Errorf("%s: reused = %v, want %v", name, info != nil, c.want)
			continue
		}
		if info == nil {
			continue
		}
		if !strings.Contains(why, "plan's inspection") {
			t.Errorf("%s: the event says %q", name, why)
		}
		// The apply's copy is its own: the plan's report stays as planned.
		if info == c.p.Guest.Guest {
			t.Errorf("%s: the apply shares the plan's guest", name)
		}
		if info.Mountpoints != nil {
			info.Mountpoints["/"] = "/dev/sdz9"
			if c.p.Guest.Guest.Mountpoints["/"] == "/dev/sdz9" {
				t.Errorf("%s: the apply's mountpoints are the plan's map", name)
			}
		}
	}
}

// Only the fixes work in the appliance: without them, or on a data disk,
// an apply that took the plan's inspection launches none before CONVERT.
func TestNeedsSession(t *testing.T) {
	p := reusePlan("inspected", linuxInfo())
	if !needsSession(p, linuxInfo()) {
		t.Error("a Linux guest with fixes on needs the appliance")
	}
	if needsSession(p, &guest.Info{OS: "none"}) {
		t.Error("a data disk needs no appliance")
	}
	p.Stages[1].Run = false
	if needsSession(p, linuxInfo()) {
		t.Error("with the fixes off nothing works in the appliance")
	}
	p.Stages[1].Run = true
	if needsSession(p, &guest.Info{OS: "freebsd", Mountpoints: map[string]string{"/": "/dev/sda1"}}) {
		t.Error("a guest no fixer handles needs no appliance")
	}
}

// The plan's INSPECT line says what the apply will do, for a disk and for
// a VM alike.
func TestNoteInspectionReuse(t *testing.T) {
	p := reusePlan("inspected", linuxInfo())
	noteInspectionReuse(p, ", all 2 disks as one guest")
	if r := p.Stages[0].Reason; !strings.Contains(r, "use this plan's inspection") || !strings.Contains(r, "mount it in the appliance") ||
		!strings.HasSuffix(r, ", all 2 disks as one guest") {
		t.Errorf("a guest with fixes: %q", r)
	}
	p = reusePlan("cached", &guest.Info{OS: "none"})
	noteInspectionReuse(p, "")
	if r := p.Stages[0].Reason; !strings.Contains(r, "needs no appliance") {
		t.Errorf("a data disk: %q", r)
	}
	p = &Plan{Guest: &GuestPlan{How: "skipped"}, Stages: []StagePlan{{StageInspect, true, "find the guest"}}}
	noteInspectionReuse(p, "")
	if r := p.Stages[0].Reason; r != "find the guest" {
		t.Errorf("not inspected at plan time, the line changed: %q", r)
	}
}
