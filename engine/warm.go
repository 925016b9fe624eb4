package engine

import (
	"context"
	"os"
	"time"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/engine/source"
	"github.com/vmconv/terraform-provider-vmconv/engine/vsphere"
)

// Warm migration (source.vsphere.warm): syncs copy a running VM into
// staging images in the cache, the first time in full and then the areas
// changed since (vSphere's changed block tracking); the cutover, an Apply
// of the VM with Warm.Cutover, shuts it down, syncs the last changes and
// converts the staging images like any VM.

type (
	WarmSpec       = source.Warm
	WarmState      = vsphere.WarmState
	WarmSyncRecord = vsphere.Sync
	WarmPreview    = source.WarmPreview
)

// WarmResult is a cutover's account in the report.
type WarmResult struct {
	PowerDown *vsphere.PowerDown `json:"power_down"`
	// Syncs are every sync of the migration; the last is the cutover's.
	Syncs []vsphere.Sync `json:"syncs"`
	// DowntimeMS runs from the shutdown request to the images and their
	// report written, ready to be renamed into place (a rename follows).
	DowntimeMS int64 `json:"downtime_ms"`
	// Where the downtime went before the stages (Result.Stages): the
	// guest's shutdown, and the final sync.
	ShutdownMS  int64 `json:"shutdown_ms"`
	FinalSyncMS int64 `json:"final_sync_ms"`
}

func warmResult(w *source.WarmCutover, now time.Time) *WarmResult {
	r := &WarmResult{PowerDown: w.PowerDown, Syncs: w.Syncs}
	r.DowntimeMS = now.Sub(w.PowerDown.Requested).Milliseconds()
	r.ShutdownMS = w.PowerDown.Off.Sub(w.PowerDown.Requested).Milliseconds()
	if n := len(w.Syncs); n > 0 {
		r.FinalSyncMS = int64(w.Syncs[n-1].Seconds * 1000)
	}
	return r
}

// WarmSync syncs a warm migration's staging images with the running VM:
// in full the first time (or after changed block tracking was reset on
// the source), then the areas changed since the last sync.
func (e *Engine) WarmSync(ctx context.Context, req Request, sink Sink) (*WarmState, error) {
	s, env, err := e.warmSource(req, sink)
	if err != nil {
		return nil, err
	}
	c, err := vsphere.Connect(ctx, source.VSphereOptions(s))
	if err != nil {
		return nil, err
	}
	defer c.Logout(context.WithoutCancel(ctx))
	st, _, err := c.WarmSync(ctx, vsphere.WarmOptions{Datacenter: s.Datacenter, VM: s.VM, Dir: source.WarmStaging(env, s), Logger: env.Log})
	return st, err
}

// WarmStatus reads what the syncs of req's warm migration recorded; nil
// before the first.
func (e *Engine) WarmStatus(req Request) (*WarmState, error) {
	s, env, err := e.warmSource(req, nil)
	if err != nil {
		return nil, err
	}
	return vsphere.ReadWarmState(source.WarmStaging(env, s))
}

// WarmDiscard removes a warm migration's staging images, as a destroy
// before the cutover does.
func (e *Engine) WarmDiscard(req Request) error {
	s, env, err := e.warmSource(req, nil)
	if err != nil {
		return err
	}
	return os.RemoveAll(source.WarmStaging(env, s))
}

func (e *Engine) warmSource(req Request, sink Sink) (*source.VSphere, source.Env, error) {
	s := req.Source.VSphere
	if s == nil || s.Warm == nil {
		return nil, source.Env{}, fault.New(fault.InvalidRequest, "", "not a warm migration: source.vsphere.warm is not set")
	}
	env := e.sourceEnv(sink)
	env.WholeVM = true
	return s, env, nil
}
