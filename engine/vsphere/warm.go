package vsphere

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/engine/fetch"
	"github.com/vmconv/terraform-provider-vmconv/engine/output"
)

// WarmOptions say which VM a warm migration syncs, and where its staging
// images live.
type WarmOptions struct {
	Datacenter, VM string
	// Dir is the staging folder: one raw image per disk and the record
	// of the syncs (warm.json). It is vmconv's, never the user's output.
	Dir    string
	Logger fetch.Logger
}

// WarmState is the staging folder's record, replaced atomically after
// every sync.
type WarmState struct {
	VM    string     `json:"vm"`
	Disks []WarmDisk `json:"disks"`
	Syncs []Sync     `json:"syncs"`
	// Writing is set while a sync writes into the images. A sync killed
	// there leaves them between two change IDs; the next sync, which asks
	// for the areas changed since the recorded IDs, rewrites every area
	// the killed one touched.
	Writing bool `json:"writing,omitempty"`
}

// WarmDisk is one disk's staging image: a raw image equal to the disk as
// of ChangeID.
type WarmDisk struct {
	Key      int32  `json:"key"`
	Label    string `json:"label"`
	Capacity int64  `json:"capacity"`
	Image    string `json:"image"`
	ChangeID string `json:"change_id"`
}

// Sync is one pass: a full copy or the areas changed since the last one.
type Sync struct {
	At       time.Time `json:"at"`
	Seconds  float64   `json:"seconds"`
	Snapshot string    `json:"snapshot"`
	// Full is set for a copy of everything, with the reason.
	Full       bool   `json:"full"`
	FullReason string `json:"full_reason,omitempty"`
	// Resumed is set when the sync before was interrupted.
	Resumed bool `json:"resumed,omitempty"`
	// EnabledCBT is set when this sync enabled changed block tracking
	// on the VM; RemovedSnapshots lists vmconv snapshots a failed run
	// had left, removed before this one was taken.
	EnabledCBT       bool       `json:"enabled_cbt,omitempty"`
	RemovedSnapshots []string   `json:"removed_snapshots,omitempty"`
	Disks            []SyncDisk `json:"disks"`
	// ChangedBytes is the size of the areas vSphere reported, CopiedBytes
	// what was read from the datastore.
	ChangedBytes int64 `json:"changed_bytes"`
	CopiedBytes  int64 `json:"copied_bytes"`
}

// SyncDisk is one disk's part of a sync.
type SyncDisk struct {
	Key          int32  `json:"key"`
	From         string `json:"from_change_id,omitempty"`
	To           string `json:"to_change_id"`
	Areas        int    `json:"areas"`
	Queries      int    `json:"queries"`
	ChangedBytes int64  `json:"changed_bytes"`
	// SHA256 sums what this sync wrote: each area's offset, length and
	// bytes, in order. Summing the whole image would read it all, while
	// the VM is down at the cutover.
	SHA256 string `json:"sha256"`
}

const warmRecord = "warm.json"

// ReadWarmState reads the staging folder's record; nil when there is none.
func ReadWarmState(dir string) (*WarmState, error) {
	b, err := os.ReadFile(filepath.Join(dir, warmRecord))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var s WarmState
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fault.Wrap(fault.InvalidRequest, filepath.Join(dir, warmRecord), err, "the warm migration's record is not valid")
	}
	return &s, nil
}

func writeWarmState(dir string, s *WarmState) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return output.WriteAtomic(filepath.Join(dir, warmRecord), b, 0o644)
}

// WarmSync brings the staging images up to a new snapshot of the VM:
// everything the first time (or when the change IDs are no longer valid),
// then only the areas changed since the last sync. It enables changed
// block tracking when the VM has it off, removes snapshots a failed run
// left, and removes its own snapshot whatever happens.
func (c *Client) WarmSync(ctx context.Context, o WarmOptions) (*WarmState, *Sync, error) {
	started := time.Now()
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, nil, fault.Wrap(fault.OutputNotWritable, o.Dir, err, "cannot create the staging folder")
	}
	unlock, err := lockDir(o.Dir)
	if err != nil {
		return nil, nil, fault.Wrap(fault.OutputLocked, o.Dir, err, "another apply is syncing this VM's warm migration").
			WithHint("Wait for it to end (one workspace should own a warm migration), then run terraform apply again.")
	}
	defer unlock()
	st, err := ReadWarmState(o.Dir)
	if err != nil {
		return nil, nil, err
	}
	if st == nil {
		st = &WarmState{VM: o.VM}
	}
	sync := &Sync{At: started.UTC(), Resumed: st.Writing}
	_, vm, err := c.findVM(ctx, o.Datacenter, o.VM)
	if err != nil {
		return nil, nil, err
	}
	if sync.EnabledCBT, sync.RemovedSnapshots, err = c.prepareWarm(ctx, vm, o.VM); err != nil {
		return nil, nil, err
	}
	snap, err := c.readVM(ctx, o.Datacenter, o.VM, warmSnapshot, "the changed areas were copied", func(r vmRead) error {
		return c.syncDisks(ctx, r, o, st, sync)
	})
	sync.Snapshot = snap.Snapshot
	if err != nil {
		return nil, nil, err
	}
	sync.Seconds = time.Since(started).Seconds()
	st.Syncs = append(st.Syncs, *sync)
	st.Writing = false
	if err := writeWarmState(o.Dir, st); err != nil {
		return nil, nil, fault.Wrap(fault.OutputNotWritable, o.Dir, err, "cannot record the sync")
	}
	return st, sync, nil
}

// prepareWarm enables changed block tracking and removes vmconv snapshots
// left by a run that could not remove its own.
func (c *Client) prepareWarm(ctx context.Context, vm *object.VirtualMachine, name string) (enabled bool, removed []string, err error) {
	var m mo.VirtualMachine
	if err := c.soap(ctx, func() error {
		return vm.Properties(ctx, vm.Reference(), []string{"config.changeTrackingEnabled", "snapshot"}, &m)
	}); err != nil {
		return false, nil, fault.Wrap(fault.FetchFailed, name, err, "cannot read the VM's configuration")
	}
	if m.Config == nil || m.Config.ChangeTrackingEnabled == nil || !*m.Config.ChangeTrackingEnabled {
		on := true
		if err := c.soap(ctx, func() error {
			t, err := vm.Reconfigure(ctx, types.VirtualMachineConfigSpec{ChangeTrackingEnabled: &on})
			if err != nil {
				return err
			}
			return t.Wait(ctx)
		}); err != nil {
			return false, nil, fault.Wrap(fault.FetchFailed, name, err, "cannot enable changed block tracking on the VM").
				WithHint("Give the user the VirtualMachine.Config.ChangeTracking privilege, or enable it in vSphere.")
		}
		enabled = true
	}
	if m.Snapshot != nil {
		for _, s := range leftoverSnapshots(m.Snapshot.RootSnapshotList) {
			if err := c.removeSnapshot(ctx, s.Snapshot); err != nil {
				return enabled, removed, fault.Wrap(fault.FetchFailed, name, err, "cannot remove the snapshot %s a failed run left", s.Name).
					WithHint("Remove it in vSphere (Snapshots > Manage), then run terraform apply again.")
			}
			removed = append(removed, s.Name)
		}
	}
	return enabled, removed, nil
}

func leftoverSnapshots(tree []types.VirtualMachineSnapshotTree) []types.VirtualMachineSnapshotTree {
	var out []types.VirtualMachineSnapshotTree
	for _, s := range tree {
		if strings.HasPrefix(s.Name, warmSnapshot) {
			out = append(out, s)
		}
		out = append(out, leftoverSnapshots(s.ChildSnapshotList)...)
	}
	return out
}

func (c *Client) removeSnapshot(ctx context.Context, snap types.ManagedObjectReference) error {
	return c.soap(ctx, func() error {
		consolidate := true
		t, err := methods.RemoveSnapshot_Task(ctx, c.vc, &types.RemoveSnapshot_Task{This: snap, RemoveChildren: false, Consolidate: &consolidate})
		if err != nil {
			return err
		}
		return object.NewTask(c.vc, t.Returnval).Wait(ctx)
	})
}

// syncDisks copies, for every disk of the snapshot r was read from, the
// areas changed since the staging image's change ID.
func (c *Client) syncDisks(ctx context.Context, r vmRead, o WarmOptions, st *WarmState, sync *Sync) error {
	prev := map[int32]WarmDisk{}
	for _, d := range st.Disks {
		prev[d.Key] = d
	}
	st.Writing = true
	if err := writeWarmState(o.Dir, st); err != nil {
		return fault.Wrap(fault.OutputNotWritable, o.Dir, err, "cannot record the sync")
	}
	var disks []WarmDisk
	for i, d := range r.info.Disks {
		if d.Backing != "flat" || len(d.Chain) != 1 {
			return fault.New(fault.UnsupportedFormat, o.VM, "disk %d (%s) is a chain of %d %s files: warm migration copies the changed areas of flat disks", i, d.Label, len(d.Chain), d.Backing).
				WithHint("Remove the VM's own snapshots (consolidate them), or migrate it cold (without warm).")
		}
		if d.ChangeID == "" {
			return fault.New(fault.FetchFailed, o.VM, "disk %d (%s) has no change ID in the snapshot: changed block tracking is not active", i, d.Label).
				WithHint("vSphere starts tracking at the first snapshot after it is enabled; run terraform apply again.")
		}
		// Images are named by device key, which stays with the disk when
		// another is added or removed.
		wd := WarmDisk{Key: d.Key, Label: d.Label, Capacity: d.Capacity, Image: filepath.Join(o.Dir, fmt.Sprintf("disk-%d.raw", d.Key)), ChangeID: d.ChangeID}
		sd := SyncDisk{Key: d.Key, To: d.ChangeID}
		from, reason := "*", ""
		switch p, ok := prev[d.Key]; {
		case !ok || p.ChangeID == "":
			reason = "the first copy"
		case p.Capacity != d.Capacity:
			reason = fmt.Sprintf("disk %d changed size", i)
		case !sizeIs(wd.Image, d.Capacity):
			reason = fmt.Sprintf("the staging image of disk %d is missing or cut short", i)
		case Epoch(p.ChangeID) != Epoch(d.ChangeID):
			reason = fmt.Sprintf("changed block tracking was reset on the source since the last sync (disk %d: change ID %q, now %q)", i, p.ChangeID, d.ChangeID)
		default:
			from = p.ChangeID
		}
		flat, err := c.flatExtent(ctx, r, d)
		if err != nil {
			return err
		}
		areas, queries, err := c.changedAreas(ctx, r, d, from)
		if err != nil && from != "*" && invalidChangeID(err) {
			reason = fmt.Sprintf("the change ID of disk %d is no longer valid (changed block tracking was reset on the source)", i)
			from = "*"
			areas, queries, err = c.changedAreas(ctx, r, d, from)
		}
		if err != nil {
			return fault.Wrap(fault.FetchFailed, o.VM, err, "cannot ask vSphere which areas of disk %d changed", i)
		}
		if from == "*" {
			sync.Full, sync.FullReason = true, reason
		} else {
			sd.From = from
		}
		sd.Areas, sd.Queries = len(areas), queries
		copied, sum, err := c.copyAreas(ctx, r, flat, wd.Image, d.Capacity, areas, from == "*", o.Logger)
		if err != nil {
			return err
		}
		for _, a := range areas {
			sd.ChangedBytes += a.Length
		}
		sync.ChangedBytes += sd.ChangedBytes
		sync.CopiedBytes += copied
		sd.SHA256 = sum
		disks = append(disks, wd)
		sync.Disks = append(sync.Disks, sd)
	}
	st.Disks = disks
	return nil
}

// invalidChangeID tells vSphere's refusal of a change ID it no longer
// knows (tracking was reset) from other failures, which must not turn
// into a full copy.
func invalidChangeID(err error) bool {
	if !soap.IsSoapFault(err) {
		return false
	}
	f, ok := soap.ToSoapFault(err).VimFault().(types.InvalidArgument)
	return ok && f.InvalidProperty == "changeId"
}

// changedAreas asks for the areas changed since changeID, as of the
// snapshot, page by page: one reply covers at most a few thousand areas,
// and says up to where.
func (c *Client) changedAreas(ctx context.Context, r vmRead, d Disk, changeID string) (areas []types.DiskChangeExtent, queries int, err error) {
	for off := int64(0); off < d.Capacity; {
		var res *types.QueryChangedDiskAreasResponse
		if err := c.soap(ctx, func() error {
			var err error
			res, err = methods.QueryChangedDiskAreas(ctx, c.vc, &types.QueryChangedDiskAreas{
				This: r.vm.Reference(), Snapshot: r.snap, DeviceKey: d.Key, StartOffset: off, ChangeId: changeID,
			})
			return err
		}); err != nil {
			return nil, queries, err
		}
		queries++
		info := res.Returnval
		if info.StartOffset != off || info.Length <= 0 {
			return nil, queries, fmt.Errorf("vSphere answered for %d+%d when asked from %d", info.StartOffset, info.Length, off)
		}
		for _, a := range info.ChangedArea {
			if a.Start < off || a.Length <= 0 || a.Start+a.Length > d.Capacity {
				return nil, queries, fmt.Errorf("vSphere reported an area %d+%d outside %d..%d", a.Start, a.Length, off, d.Capacity)
			}
		}
		areas = append(areas, info.ChangedArea...)
		off = info.StartOffset + info.Length
	}
	return areas, queries, nil
}

// flatExtent is the datastore path of the file holding the disk's data:
// the single extent its descriptor names.
func (c *Client) flatExtent(ctx context.Context, r vmRead, d Disk) (object.DatastorePath, error) {
	var p object.DatastorePath
	if !p.FromString(d.Chain[0]) {
		return p, fault.New(fault.CorruptDescriptor, d.Chain[0], "not a datastore path")
	}
	b, err := c.readRange(ctx, r.dc, p, 0, -1)
	if err != nil {
		return p, err
	}
	ext, err := singleFlatExtent(b)
	if err != nil {
		return p, fault.Wrap(fault.CorruptDescriptor, d.Chain[0], err, "warm migration cannot read this disk's data by areas")
	}
	return object.DatastorePath{Datastore: p.Datastore, Path: filepath.ToSlash(filepath.Join(filepath.Dir(p.Path), ext))}, nil
}

// copyAreas writes the areas of the flat file into the image, then makes
// the image durable and sums it. A full copy starts from an empty sparse
// image; an area that reads as zeros becomes a hole.
func (c *Client) copyAreas(ctx context.Context, r vmRead, flat object.DatastorePath, image string, capacity int64, areas []types.DiskChangeExtent, full bool, log fetch.Logger) (copied int64, sum string, err error) {
	flags := os.O_RDWR | os.O_CREATE
	if full {
		flags |= os.O_TRUNC
	}
	f, err := os.OpenFile(image, flags, 0o644)
	if err != nil {
		return 0, "", fault.Wrap(fault.OutputNotWritable, image, err, "cannot open the staging image")
	}
	defer f.Close()
	if err := f.Truncate(capacity); err != nil {
		return 0, "", fault.Wrap(fault.OutputNotWritable, image, err, "cannot size the staging image")
	}
	const chunk = 8 << 20
	h := sha256.New()
	for _, a := range areas {
		for off := a.Start; off < a.Start+a.Length; off += chunk {
			n := min(chunk, a.Start+a.Length-off)
			b, err := c.readRange(ctx, r.dc, flat, off, n)
			if err != nil {
				return copied, "", err
			}
			fmt.Fprintf(h, "%d %d\n", off, n)
			h.Write(b)
			copied += int64(len(b))
			if err := writeOrPunch(f, b, off); err != nil {
				return copied, "", fault.Wrap(fault.OutputNotWritable, image, err, "cannot write the staging image")
			}
		}
	}
	if err := f.Sync(); err != nil {
		return copied, "", fault.Wrap(fault.OutputNotWritable, image, err, "cannot flush the staging image")
	}
	return copied, hex.EncodeToString(h.Sum(nil)), nil
}

// sizeIs tells whether file exists with size bytes.
func sizeIs(file string, size int64) bool {
	fi, err := os.Stat(file)
	return err == nil && fi.Size() == size
}

// Epoch is a change ID's tracking epoch, the part before the sequence:
// IDs of two epochs cannot be compared.
func Epoch(changeID string) string {
	e, _, _ := strings.Cut(changeID, "/")
	return e
}
