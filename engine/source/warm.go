package source

import (
	"context"
	"fmt"
	"time"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/engine/vsphere"
)

// WarmCutover is what a warm migration's cutover did to reach its images.
type WarmCutover struct {
	PowerDown *vsphere.PowerDown `json:"power_down"`
	// Syncs are every sync of the migration, the final one last.
	Syncs   []vsphere.Sync `json:"syncs"`
	Staging string         `json:"staging"`
}

// WarmPreview is what the next sync of a warm migration will do, as a
// plan states it: read from the staging record and the VM's
// configuration, without a snapshot.
type WarmPreview struct {
	Syncs     int       `json:"syncs"`
	LastSync  time.Time `json:"last_sync"`
	ChangeIDs []string  `json:"change_ids"`
	// Full is set when the next sync copies everything, with the reason;
	// Reset when that reason is a reset of changed block tracking on the
	// source, which a plan warns about.
	Full   bool   `json:"full"`
	Reason string `json:"reason"`
	Reset  bool   `json:"reset"`
}

// warmPreview checks that warm migration can read every disk of vm, before
// tracking is enabled or the VM shut down, and says what the next sync
// will copy.
func (v *vsphereSource) warmPreview(vm *vsphere.VM) (*WarmPreview, error) {
	s := v.s
	for i, d := range vm.Disks {
		if d.Backing != "flat" || len(d.Chain) != 1 {
			return nil, fault.New(fault.UnsupportedFormat, s.VM, "disk %d (%s) is a chain of %d %s file(s): warm migration reads the changed areas of flat disks without snapshots", i, d.Label, len(d.Chain), d.Backing).
				WithHint("Remove the VM's own snapshots (consolidate them), or migrate it cold (without warm).")
		}
	}
	st, err := vsphere.ReadWarmState(WarmStaging(v.env, s))
	if err != nil {
		return nil, err
	}
	pv := &WarmPreview{Full: true, Reason: "the first copy"}
	if st == nil || len(st.Syncs) == 0 {
		return pv, nil
	}
	pv.Syncs, pv.LastSync = len(st.Syncs), st.Syncs[len(st.Syncs)-1].At
	rec := map[int32]vsphere.WarmDisk{}
	for _, d := range st.Disks {
		pv.ChangeIDs = append(pv.ChangeIDs, d.ChangeID)
		rec[d.Key] = d
	}
	pv.Full, pv.Reason = false, ""
	for i, d := range vm.Disks {
		r, ok := rec[d.Key]
		switch {
		case !ok || r.Capacity != d.Capacity:
			pv.Full, pv.Reason = true, fmt.Sprintf("disk %d (%s) is new or changed size since the last sync", i, d.Label)
		case vsphere.Epoch(d.ChangeID) != vsphere.Epoch(r.ChangeID):
			pv.Full, pv.Reset = true, true
			pv.Reason = fmt.Sprintf("changed block tracking was reset on the source since the last sync (disk %d: change ID %q, now %q)", i, r.ChangeID, d.ChangeID)
		}
	}
	return pv, nil
}

// DefaultShutdownTimeout is how long a guest has to shut down at cutover.
const DefaultShutdownTimeout = 5 * time.Minute

// WarmStaging is the staging folder of a warm migration of the VM s
// names: in the cache, never at the output.
func WarmStaging(env Env, s *VSphere) string {
	return env.entry("warm", vsphere.Shown(s.URL)+"\x00"+s.Datacenter+"\x00"+s.VM)
}

// cutover stops the VM, syncs what changed since the last sync, and
// points the VM's disks at the staging images.
func (v *vsphereSource) cutover(ctx context.Context, c *vsphere.Client, l *Local) (*Local, error) {
	s := v.s
	if !s.Warm.Cutover {
		return nil, fault.New(fault.Internal, s.VM, "a warm migration is synced until its cutover, not converted")
	}
	pd, err := c.PowerDown(ctx, s.Datacenter, s.VM, warmTimeout(s.Warm))
	if err != nil {
		return nil, err
	}
	v.env.Log.Log("info", fmt.Sprintf("VM %s is off (%s) for the cutover", s.VM, pd.How), map[string]any{"shutdown_seconds": pd.Off.Sub(pd.Requested).Seconds()})
	dir := WarmStaging(v.env, s)
	st, sync, err := c.WarmSync(ctx, vsphere.WarmOptions{Datacenter: s.Datacenter, VM: s.VM, Dir: dir, Logger: v.env.Log})
	if err != nil {
		return nil, RestartAfterFailedCutover(ctx, s, pd, err)
	}
	if len(st.Disks) != len(l.Disks) {
		return nil, fault.New(fault.SourceChanged, s.VM, "the VM had %d disks when it was planned and %d at the cutover", len(l.Disks), len(st.Disks)).
			WithHint("Run terraform plan again.")
	}
	for i := range l.Disks {
		l.Disks[i].Head, l.Disks[i].Remote, l.Disks[i].Format = st.Disks[i].Image, nil, "raw"
	}
	l.Warm = &WarmCutover{PowerDown: pd, Syncs: st.Syncs, Staging: dir}
	v.env.Log.Log("info", fmt.Sprintf("final sync of %s: %d byte(s) changed in %.1fs", s.VM, sync.ChangedBytes, sync.Seconds), nil)
	return l, nil
}

func warmTimeout(w *Warm) time.Duration {
	if w.ShutdownTimeout <= 0 {
		return DefaultShutdownTimeout
	}
	return w.ShutdownTimeout
}

// RestartAfterFailedCutover powers the VM on again when a cutover that
// powered it down failed before its images were published, and says so
// in the error: the staging images are kept, and the next apply cuts over
// again.
func RestartAfterFailedCutover(ctx context.Context, s *VSphere, pd *vsphere.PowerDown, cause error) error {
	if pd == nil || pd.How == "already off" {
		return cause
	}
	fe, ok := fault.As(cause)
	if !ok {
		fe = fault.Wrap(fault.Internal, s.VM, cause, "the cutover failed")
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
	defer cancel()
	c, err := vsphere.Connect(rctx, VSphereOptions(s))
	if err == nil {
		defer c.Logout(rctx)
		err = c.PowerOn(rctx, s.Datacenter, s.VM)
	}
	if err != nil {
		return fe.WithFact("Source VM", "left powered off: powering it on again failed ("+err.Error()+")")
	}
	return fe.WithFact("Source VM", "powered on again; the staging images are kept, and the next apply cuts over again")
}
