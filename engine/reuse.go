package engine

import (
	"encoding/json"

	"github.com/vmconv/terraform-provider-vmconv/engine/fix"
	"github.com/vmconv/terraform-provider-vmconv/engine/guest"
)

// planInspection returns the guest as the plan inspected it, for an apply
// that can take it instead of inspecting again, and the line that says so.
// Apply has already checked the source's fingerprint against the plan's,
// so the disks are the ones inspected; it is nil where they may not be, or
// where the inspection cannot be replayed.
func planInspection(p *Plan) (*guest.Info, string) {
	g := p.Guest
	switch {
	case g == nil || g.Guest == nil:
		return nil, ""
	case g.How != "inspected" && g.How != "cached":
		return nil, ""
	case p.Source.Deferred:
		// Planned from metadata: nothing was inspected.
		return nil, ""
	case p.Request.Source.VSphere != nil && p.Request.Source.VSphere.Warm != nil:
		// A warm cutover converts the disks as they are at shutdown, not as
		// they were planned.
		return nil, ""
	case g.Guest.HasOS() && g.Guest.Mountpoints["/"] == "":
		// Inspected by a vmconv that did not record where the guest
		// mounts (a cached plan from before).
		return nil, ""
	case p.Request.Inspect.Root != "" && g.Guest.HasOS() && g.Guest.Root != p.Request.Inspect.Root:
		return nil, ""
	}
	// The apply's result and report must not share the plan's copy.
	b, err := json.Marshal(g.Guest)
	if err != nil {
		return nil, ""
	}
	info := new(guest.Info)
	if err := json.Unmarshal(b, info); err != nil {
		return nil, ""
	}
	return info, "the source's fingerprint is the plan's: using the plan's inspection (" + g.How + ") instead of inspecting again"
}

// needsSession tells whether an apply that took the plan's inspection still
// needs an appliance: only the fixes work in it.
func needsSession(p *Plan, info *guest.Info) bool {
	if !info.HasOS() || !p.Stage(StageFix).Run {
		return false
	}
	r, _ := fix.For(info)
	return r != nil
}

// noteInspectionReuse rewrites the plan's INSPECT line when the apply will
// take this plan's inspection, so the reviewer sees whether an appliance
// will be launched at all. suffix keeps what the line said about the disks.
func noteInspectionReuse(p *Plan, suffix string) {
	info, _ := planInspection(p)
	if info == nil {
		return
	}
	for i := range p.Stages {
		if p.Stages[i].Name != StageInspect {
			continue
		}
		p.Stages[i].Reason = "use this plan's inspection of the guest (apply re-checks the source's fingerprint first)"
		if needsSession(p, info) {
			p.Stages[i].Reason += " and mount it in the appliance the fixes use"
		} else {
			p.Stages[i].Reason += "; it needs no appliance, as no fix runs in the guest"
		}
		p.Stages[i].Reason += suffix
	}
}
