package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"strings"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/engine/vsphere"
)

func vsphereOptions(s *VSphereSpec) vsphere.Options {
	return vsphere.Options{URL: s.URL, Username: s.Username, Password: s.Password, Thumbprint: s.Thumbprint, Insecure: s.Insecure}
}

// vsphereFingerprint identifies a VM disk from its configuration: the VM,
// the disk's backing chain and capacity. A new snapshot, a grown disk or
// another VM changes it; writes inside the guest do not (reading them
// would mean reading the disk).
func vsphereFingerprint(s *VSphereSpec, vm *vsphere.VM) string {
	d := vm.Disks[s.Disk]
	h := sha256.Sum256([]byte(strings.Join([]string{vsphere.Shown(s.URL), vm.UUID, fmt.Sprint(s.Disk), strings.Join(d.Chain, "|"), fmt.Sprint(d.Capacity)}, "\x00")))
	return "vsphere:v1:" + hex.EncodeToString(h[:])
}

// remoteVSphere reads the VM's configuration and, with fetchNow, copies the
// disk into the cache.
func (e *Engine) remoteVSphere(ctx context.Context, s *VSphereSpec, fetchNow bool, sink Sink) (local, fp string, size int64, err error) {
	c, err := vsphere.Connect(ctx, vsphereOptions(s))
	if err != nil {
		return "", "", 0, err
	}
	defer c.Logout(context.WithoutCancel(ctx))
	vm, err := c.FindVM(ctx, s.Datacenter, s.VM)
	if err != nil {
		return "", "", 0, err
	}
	if s.Disk < 0 || s.Disk >= len(vm.Disks) {
		return "", "", 0, fault.New(fault.InvalidRequest, s.VM, "the VM has %d disk(s); disk %d does not exist", len(vm.Disks), s.Disk).
			WithHint("Set source.vsphere.disk to a number from 0 to %d.", len(vm.Disks)-1)
	}
	fp = vsphereFingerprint(s, vm)
	if !fetchNow {
		return "", fp, vm.Disks[s.Disk].Capacity, nil
	}
	dir := e.cacheEntry("vsphere", fp)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", 0, fault.Wrap(fault.OutputNotWritable, dir, err, "cannot create the download folder")
	}
	f, err := c.FetchDisk(ctx, vsphere.FetchOptions{Datacenter: s.Datacenter, VM: s.VM, Disk: s.Disk, Snapshot: s.Snapshot, Dir: dir, Logger: fetchLog{sink}})
	if err != nil {
		return "", "", 0, err
	}
	if sink != nil {
		sink.Event(Event{Kind: EventInfo, Stage: StageFetch, Message: fmt.Sprintf("copied %d file(s) of %s disk %d (%d reused, %d re-login(s))", len(f.Files), s.VM, s.Disk, f.Reused, f.Relogins),
			Fields: map[string]any{"snapshot": f.Snapshot, "snapshot_removed": f.Removed}})
	}
	return f.Head, fp, vm.Disks[s.Disk].Capacity, nil
}

// shownVSphere names the source in plans without credentials.
func shownVSphere(s *VSphereSpec) string {
	return fmt.Sprintf("%s VM %q disk %d", vsphere.Shown(s.URL), s.VM, s.Disk)
}
