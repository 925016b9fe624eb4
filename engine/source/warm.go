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
