package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/engine/fingerprint"
	"github.com/vmconv/terraform-provider-vmconv/engine/fix"
	"github.com/vmconv/terraform-provider-vmconv/engine/guest"
	"github.com/vmconv/terraform-provider-vmconv/engine/inspect"
	"github.com/vmconv/terraform-provider-vmconv/engine/internal/guestfs"
	"github.com/vmconv/terraform-provider-vmconv/engine/output"
	"github.com/vmconv/terraform-provider-vmconv/engine/virtio"
)

// planGuestVersion is part of the cache key: bump it when inspection or the
// fixes change what they find, so stale previews are not reused.
const planGuestVersion = 6

// GuestPlan is what plan-time inspection found and what the fixes would
// change: a dry run of INSPECT and FIX on a throwaway overlay.
type GuestPlan struct {
	// How is "inspected", "cached" or "skipped".
	How      string         `json:"how"`
	Reason   string         `json:"reason,omitempty"`
	Guest    *guest.Info    `json:"guest,omitempty"`
	Outcomes []fix.Outcome  `json:"fix_outcomes,omitempty"`
	Changes  []guest.Change `json:"fix_changes,omitempty"`
	// Drivers are the VirtIO drivers a Windows guest will get.
	Drivers  []virtio.Driver `json:"drivers,omitempty"`
	Warnings []string        `json:"warnings,omitempty"`
}

// PlannedFixes lists the fixes that would change the guest, in order.
func (g *GuestPlan) PlannedFixes() []string {
	if g == nil {
		return nil
	}
	var out []string
	for _, o := range g.Outcomes {
		if o.Status == fix.StatusPlanned {
			out = append(out, o.Name)
		}
	}
	return out
}

func (e *Engine) planCacheDir() string { return filepath.Join(e.cfg.CacheDir, "inspections") }

// planGuestKey keys a preview by everything that decides it: the source's
// fingerprint, the chosen root, the fix options, and the driver source's
// contents (a newer virtio-win at the same path brings other drivers).
func planGuestKey(fp string, req Request) string {
	b, _ := json.Marshal(struct {
		V       int
		FP      string
		Root    string
		Fixes   FixSpec
		Drivers string
	}{planGuestVersion, fp, req.Inspect.Root, req.Fixes, virtio.Identity(req.Fixes.VirtioWin)})
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:16])
}

// CachedGuestPlan returns a cached preview without launching anything.
func (e *Engine) cachedGuestPlan(key string) (*GuestPlan, bool) {
	b, err := os.ReadFile(filepath.Join(e.planCacheDir(), key+".json"))
	if err != nil {
		return nil, false
	}
	var g GuestPlan
	if json.Unmarshal(b, &g) != nil {
		return nil, false
	}
	g.How = "cached"
	return &g, true
}

// planGuest inspects the guest and dry-runs the fixes, once per source
// fingerprint and options: the result is cached, so the next plan is fast.
// planGuest inspects the guest on disks (one, or every disk of a VM in
// its order) and dry-runs the fixes, once per fingerprint and request.
func (e *Engine) planGuest(ctx context.Context, disks []resolvedDisk, fp string, req Request) (*GuestPlan, error) {
	key := planGuestKey(fp, req)
	if g, ok := e.cachedGuestPlan(key); ok {
		return g, nil
	}
	e.inspectMu.Lock()
	if f, ok := e.inspecting[key]; ok {
		e.inspectMu.Unlock()
		select {
		case <-f.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if f.err != nil {
			return nil, f.err
		}
		g := *f.g
		g.How = "cached"
		return &g, nil
	}
	if e.inspecting == nil {
		e.inspecting = map[string]*inflight{}
	}
	f := &inflight{done: make(chan struct{})}
	e.inspecting[key] = f
	e.inspectMu.Unlock()
	defer func() {
		e.inspectMu.Lock()
		delete(e.inspecting, key)
		e.inspectMu.Unlock()
		close(f.done)
	}()
	// Appliances count against the conversions' limit: each takes over a
	// GiB of memory.
	select {
	case e.sem <- struct{}{}:
		defer func() { <-e.sem }()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	f.g, f.err = e.inspectGuest(ctx, disks, key, req)
	return f.g, f.err
}

func (e *Engine) inspectGuest(ctx context.Context, disks []resolvedDisk, key string, req Request) (*GuestPlan, error) {
	work, err := e.scratch("plan-guest-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	c := disks[0].c
	// The dry run reads the guest through throwaway overlays: the source
	// is opened read-only and nothing the appliance does reaches it.
	var drives []guestfs.Drive
	var slots []guest.DiskSlot
	for i, d := range disks {
		slots = append(slots, d.Slot)
		dir := filepath.Join(work, fmt.Sprintf("disk%d", i))
		top, driver, err := d.c.Materialize(ctx, filepath.Join(dir, "shadow"), e.qemu)
		if err != nil {
			return nil, err
		}
		overlay := filepath.Join(dir, "overlay.qcow2")
		if err := e.qemu.CreateOverlay(ctx, overlay, top, driver); err != nil {
			return nil, toolFault(ctx, err, d.c.Head().Path, "qemu-img cannot open the source chain")
		}
		drives = append(drives, guestfs.Drive{Path: overlay, Format: "qcow2"})
	}
	s, _, err := e.openAppliance(ctx, filepath.Join(work, "appliance"), drives...)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	info, err := inspect.Inspect(s, inspect.Options{Root: req.Inspect.Root})
	if err != nil {
		return nil, err
	}
	info.Disks = vmSlots(slots)
	g := &GuestPlan{How: "inspected", Guest: info, Warnings: info.Warnings}
	switch {
	case !info.HasOS():
		g.Reason = "no operating system on the disk (a data disk): nothing to fix"
	case !req.Fixes.Enabled:
		g.Reason = "fixes.enabled is false"
	default:
		r, why := fix.For(info)
		if r == nil {
			g.Reason = why
			break
		}
		o := req.Fixes.Options
		o.DryRun = true
		rep, err := r.Run(ctx, info, s, o)
		if err != nil {
			if fe, ok := fault.As(err); ok {
				if fe.File == "" {
					fe.File = c.Head().Path
				}
				return nil, fe
			}
			return nil, fault.Wrap(fault.FixFailed, c.Head().Path, err, "the fixes' dry run failed at plan time")
		}
		g.Outcomes, g.Changes, g.Drivers = rep.Outcomes, rep.Changes, rep.Drivers
		g.Warnings = append(g.Warnings, rep.Warnings...)
	}
	if err := e.storeGuestPlan(key, g); err != nil {
		g.Warnings = append(g.Warnings, fmt.Sprintf("the inspection could not be cached: %v", err))
	}
	return g, nil
}

func (e *Engine) storeGuestPlan(key string, g *GuestPlan) error {
	if err := os.MkdirAll(e.planCacheDir(), 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(g, "", "  ")
	if err != nil {
		return err
	}
	return output.WriteAtomic(filepath.Join(e.planCacheDir(), key+".json"), b, 0o644)
}

// PlanRecord remembers what was last planned for an output path, so a
// caller can tell the user that the source changed between two plans (for
// instance between `terraform plan` and `terraform apply`).
type PlanRecord struct {
	// Source is the source as the request named it.
	Source      string    `json:"source,omitempty"`
	Fingerprint string    `json:"fingerprint"`
	Chain       []string  `json:"chain"`
	At          time.Time `json:"at"`
	// Files are the stamps the fingerprint was made of.
	Files map[string]fingerprint.Stamp `json:"files,omitempty"`
	// Changes is set when the plan changed an existing conversion (an
	// update in place or a replacement) rather than finding nothing to do:
	// a saved plan of that change goes stale if the source changes.
	Changes bool `json:"changes,omitempty"`
}

func (e *Engine) recordPath(outputPath string) string {
	h := sha256.Sum256([]byte(outputPath))
	return filepath.Join(e.cfg.CacheDir, "plans", hex.EncodeToString(h[:12])+".json")
}

// LastPlanned returns the record for outputPath, if any.
func (e *Engine) LastPlanned(outputPath string) (*PlanRecord, bool) {
	b, err := os.ReadFile(e.recordPath(outputPath))
	if err != nil {
		return nil, false
	}
	var r PlanRecord
	if json.Unmarshal(b, &r) != nil {
		return nil, false
	}
	return &r, true
}

// RecordPlanned stores p as the last plan for its output path; changes
// tells whether it changes an existing conversion (PlanRecord.Changes).
func (e *Engine) RecordPlanned(p *Plan, changes bool) error {
	return e.storeRecord(p.Output.Path, PlanRecord{Source: p.Source.Path, Fingerprint: p.Source.Fingerprint, Chain: p.Source.ChainPaths(),
		At: time.Now().UTC(), Files: p.Source.Files, Changes: changes})
}

// AppliedPlanned marks the last plan of req's output as applied: its
// change is made, so a later change of the source does not make it stale.
func (e *Engine) AppliedPlanned(req Request) error {
	req, err := normalize(req)
	if err != nil {
		return err
	}
	outputPath := req.Output.Path
	if outputPath == "" {
		outputPath = req.Output.Dir // a whole VM's plan is kept under its folder
	}
	r, ok := e.LastPlanned(outputPath)
	if !ok || !r.Changes {
		return nil
	}
	r.Changes = false
	return e.storeRecord(outputPath, *r)
}

func (e *Engine) storeRecord(outputPath string, r PlanRecord) error {
	path := e.recordPath(outputPath)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	b, _ := json.Marshal(r)
	return output.WriteAtomic(path, b, 0o644)
}
