package vcsimtest

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vmconv/terraform-provider-vmconv/internal/testimg"
)

// CBTBlock is the granularity the simulated change tracking works in.
const CBTBlock = 64 << 10

// CBTPageLimit is the most areas one QueryChangedDiskAreas reply holds,
// as vSphere's (a client that does not ask again from where the reply
// ends misses the rest).
const CBTPageLimit = 2000

// CBT adds changed block tracking to the simulator, which has none, for
// the disks Track is given. It follows vSphere where a client can tell:
//   - a snapshot freezes the disk: the snapshot's configuration names the
//     base disk, whose file no longer changes, and the VM writes to a new
//     delta disk (here a flat file holding the whole disk) until the
//     snapshot is removed and the delta consolidated into the base;
//   - with changeTrackingEnabled, every snapshot gives each disk a change
//     ID ("<epoch>/<n>"), and QueryChangedDiskAreas reports the areas
//     written since a change ID, as of a snapshot, at most CBTPageLimit
//     per reply; "*" reports every allocated area;
//   - disabling tracking (or Reset) starts a new epoch: older change IDs
//     are refused, and the client must copy everything again.
//
// Writes are found by comparing the frozen contents of successive
// snapshots block by block, so a block written and written back within
// one interval is not reported: real CBT reports more, never less.
type CBT struct {
	s     *Server
	mu    sync.Mutex
	disks []*cbtDisk
	snaps map[types.ManagedObjectReference]map[int32]int // snapshot -> disk key -> sequence
	// Queries counts QueryChangedDiskAreas calls, and Created and
	// Removed the snapshots of tracked VMs.
	Queries, Created, Removed int
}

type cbtDisk struct {
	vm       types.ManagedObjectReference
	key      int32
	capacity int64
	ds, dir  string // datastore name and the disk's folder in it
	name     string // the base descriptor's name without .vmdk
	local    string // the local folder of dir
	live     string // the flat file the running VM writes
	epoch    string
	seq      int
	hashes   map[int][][32]byte // sequence -> block hashes of the frozen disk
	dirty    map[int][]int      // sequence -> blocks changed since the previous sequence
	snapSeq  int                // the sequence of the snapshot that exists, 0 if none
	snapEp   map[int]string     // sequence -> epoch it was taken in
}

// EnableCBT installs change tracking on the simulator.
func (s *Server) EnableCBT() *CBT {
	c := &CBT{s: s, snaps: map[types.ManagedObjectReference]map[int32]int{}}
	s.Model.Map().Handler = c.handler
	return c
}

// Track adds a disk of vm to the tracking: its backing must be a
// descriptor "<name>.vmdk" with its data in "<name>-flat.vmdk" beside it.
func (c *CBT) Track(vm *simulator.VirtualMachine, key int32) error {
	d := findDisk(vm, key)
	if d == nil {
		return fmt.Errorf("vm %s has no disk %d", vm.Name, key)
	}
	p, err := backingPath(d)
	if err != nil {
		return err
	}
	dir := path.Dir(p.Path)
	cd := &cbtDisk{vm: vm.Self, key: key, capacity: d.CapacityInBytes, ds: p.Datastore, dir: dir,
		name: strings.TrimSuffix(path.Base(p.Path), ".vmdk"), local: filepath.Join(c.s.DatastoreDir(p.Datastore), dir),
		hashes: map[int][][32]byte{}, dirty: map[int][]int{}, snapEp: map[int]string{}}
	if cd.capacity%CBTBlock != 0 {
		return fmt.Errorf("disk %d: capacity %d is not a multiple of %d", key, cd.capacity, CBTBlock)
	}
	cd.live = filepath.Join(cd.local, cd.name+"-flat.vmdk")
	if _, err := os.Stat(cd.live); err != nil {
		return fmt.Errorf("disk %d: %w", key, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.disks = append(c.disks, cd)
	return nil
}

// LivePath is the file the running VM's disk key writes to now: the base
// disk's flat file, or while a snapshot exists, the delta's.
func (c *CBT) LivePath(vm *simulator.VirtualMachine, key int32) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if d := c.disk(vm.Self, key); d != nil {
		return d.live
	}
	return ""
}

// Reset starts a new tracking epoch for vm, as vSphere does when tracking
// is disabled and enabled again: every change ID given before is invalid.
// Call it between a client's calls: it changes the VM without its lock.
func (c *CBT) Reset(vm *simulator.VirtualMachine) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reset(vm.Self)
}

func (c *CBT) reset(vm types.ManagedObjectReference) {
	obj, _ := c.s.Model.Map().Get(vm).(*simulator.VirtualMachine)
	for _, d := range c.disks {
		if d.vm == vm {
			d.epoch = ""
			// As vSphere, the VM's disks carry no change ID until
			// tracking starts again.
			if obj != nil {
				findDisk(obj, d.key).Backing.(*types.VirtualDiskFlatVer2BackingInfo).ChangeId = ""
			}
		}
	}
}

func (c *CBT) disk(vm types.ManagedObjectReference, key int32) *cbtDisk {
	for _, d := range c.disks {
		if d.vm == vm && d.key == key {
			return d
		}
	}
	return nil
}

func (c *CBT) tracked(vm types.ManagedObjectReference) bool {
	for _, d := range c.disks {
		if d.vm == vm {
			return true
		}
	}
	return false
}

// handler routes the calls change tracking changes to wrappers of the
// simulator's objects. The simulator looks the target up in the caller's
// session before it takes the handler's answer, so the wrapper stands in
// the session's registry for the one call, and removes itself after it;
// the shared registry keeps the objects themselves.
func (c *CBT) handler(ctx *simulator.Context, m *simulator.Method) (mo.Reference, types.BaseMethodFault) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var w mo.Reference
	switch m.Name {
	case "QueryChangedDiskAreas", "CreateSnapshot_Task", "CreateSnapshotEx_Task":
		if vm, ok := ctx.Map.Get(m.This).(*simulator.VirtualMachine); ok && c.tracked(vm.Self) {
			w = &cbtVM{VirtualMachine: vm, c: c}
		}
	case "RemoveSnapshot_Task":
		if s, ok := ctx.Map.Get(m.This).(*simulator.VirtualMachineSnapshot); ok && c.snaps[s.Self] != nil {
			w = &cbtSnapshot{VirtualMachineSnapshot: s, c: c}
		}
	case "ReconfigVM_Task":
		if r, ok := m.Body.(*types.ReconfigVM_Task); ok && r.Spec.ChangeTrackingEnabled != nil && !*r.Spec.ChangeTrackingEnabled {
			c.reset(m.This)
		}
	}
	if w != nil && ctx.Session != nil {
		ctx.Session.Registry.Put(w)
	}
	return w, nil
}

// done takes a wrapper out of the caller's session.
func done(ctx *simulator.Context, ref types.ManagedObjectReference) {
	if ctx.Session != nil {
		ctx.Session.Registry.Remove(ctx, ref)
	}
}

type cbtVM struct {
	*simulator.VirtualMachine
	c *CBT
}

func (v *cbtVM) CreateSnapshotTask(ctx *simulator.Context, req *types.CreateSnapshot_Task) soap.HasFault {
	defer done(ctx, v.Self)
	return v.snapshot(ctx, func() soap.HasFault { return v.VirtualMachine.CreateSnapshotTask(ctx, req) })
}

func (v *cbtVM) CreateSnapshotExTask(ctx *simulator.Context, req *types.CreateSnapshotEx_Task) soap.HasFault {
	defer done(ctx, v.Self)
	return v.snapshot(ctx, func() soap.HasFault { return v.VirtualMachine.CreateSnapshotExTask(ctx, req) })
}

// snapshot freezes the tracked disks, lets the simulator take the
// snapshot (whose configuration then names the frozen disks and their
// change IDs), and points the VM at new deltas.
func (v *cbtVM) snapshot(ctx *simulator.Context, create func() soap.HasFault) soap.HasFault {
	c := v.c
	// c.mu is never held while the simulator runs its task: the
	// simulator's own locks are taken inside it.
	c.mu.Lock()
	var disks []*cbtDisk
	for _, d := range c.disks {
		if d.vm == v.Self {
			if d.snapSeq != 0 {
				c.mu.Unlock()
				return &methods.CreateSnapshot_TaskBody{Fault_: simulator.Fault("vcsimtest: the tracked disks support one snapshot at a time", &types.SnapshotFault{})}
			}
			disks = append(disks, d)
		}
	}
	enabled := v.Config.ChangeTrackingEnabled != nil && *v.Config.ChangeTrackingEnabled
	for _, d := range disks {
		hashes, err := hashBlocks(d.live, d.capacity)
		if err != nil {
			c.mu.Unlock()
			return &methods.CreateSnapshot_TaskBody{Fault_: simulator.Fault(err.Error(), &types.FileFault{File: d.live})}
		}
		id := ""
		if enabled {
			if d.epoch == "" {
				d.epoch, d.seq = newEpoch(), 0
				d.hashes, d.dirty = map[int][][32]byte{}, map[int][]int{}
			}
			d.seq++
			if prev, ok := d.hashes[d.seq-1]; ok {
				d.dirty[d.seq] = diffBlocks(prev, hashes)
			}
			d.hashes[d.seq], d.snapEp[d.seq] = hashes, d.epoch
			id = d.epoch + "/" + strconv.Itoa(d.seq)
		}
		findDisk(v.VirtualMachine, d.key).Backing.(*types.VirtualDiskFlatVer2BackingInfo).ChangeId = id
	}
	c.mu.Unlock()
	res := create()
	if res.Fault() != nil {
		return res
	}
	ref := taskOf(res)
	task := ctx.Map.Get(ref).(*simulator.Task)
	task.Wait()
	if task.Info.State != types.TaskInfoStateSuccess {
		return res
	}
	snap := task.Info.Result.(types.ManagedObjectReference)
	c.mu.Lock()
	defer c.mu.Unlock()
	seqs := map[int32]int{}
	for _, d := range disks {
		if err := d.beginDelta(v.VirtualMachine); err != nil {
			panic(fmt.Sprintf("vcsimtest: %v", err))
		}
		d.snapSeq = -1
		if enabled {
			d.snapSeq = d.seq
		}
		seqs[d.key] = d.snapSeq
	}
	c.snaps[snap] = seqs
	c.Created++
	return res
}

func taskOf(res soap.HasFault) types.ManagedObjectReference {
	switch b := res.(type) {
	case *methods.CreateSnapshot_TaskBody:
		return b.Res.Returnval
	case *methods.CreateSnapshotEx_TaskBody:
		return b.Res.Returnval
	}
	panic(fmt.Sprintf("vcsimtest: unexpected reply %T", res))
}

// beginDelta points the VM's disk at a new delta holding what the base
// holds, into which the running VM writes from now on.
func (d *cbtDisk) beginDelta(vm *simulator.VirtualMachine) error {
	delta := d.name + "-000001"
	flat := filepath.Join(d.local, delta+"-flat.vmdk")
	if out, err := exec.Command("cp", "--sparse=always", d.live, flat).CombinedOutput(); err != nil {
		return fmt.Errorf("copying the disk into its delta: %v: %s", err, out)
	}
	desc := testimg.Descriptor(0x2222, 0x1111, "vmfs", "", fmt.Sprintf("RW %d VMFS %q", d.capacity/512, delta+"-flat.vmdk"))
	if err := os.WriteFile(filepath.Join(d.local, delta+".vmdk"), desc, 0o644); err != nil {
		return err
	}
	b := findDisk(vm, d.key).Backing.(*types.VirtualDiskFlatVer2BackingInfo)
	base := *b
	b.FileName, b.Parent = fmt.Sprintf("[%s] %s/%s.vmdk", d.ds, d.dir, delta), &base
	d.live = flat
	return nil
}

// endDelta consolidates the delta into the base disk.
func (d *cbtDisk) endDelta(vm *simulator.VirtualMachine) error {
	delta := filepath.Join(d.local, d.name+"-000001")
	base := filepath.Join(d.local, d.name+"-flat.vmdk")
	if err := os.Rename(delta+"-flat.vmdk", base); err != nil {
		return err
	}
	os.Remove(delta + ".vmdk")
	b := findDisk(vm, d.key).Backing.(*types.VirtualDiskFlatVer2BackingInfo)
	b.FileName, b.Parent = fmt.Sprintf("[%s] %s/%s.vmdk", d.ds, d.dir, d.name), nil
	d.live, d.snapSeq = base, 0
	return nil
}

type cbtSnapshot struct {
	*simulator.VirtualMachineSnapshot
	c *CBT
}

func (s *cbtSnapshot) RemoveSnapshotTask(ctx *simulator.Context, req *types.RemoveSnapshot_Task) soap.HasFault {
	defer done(ctx, s.Self)
	c := s.c
	vmRef := s.Vm
	res := s.VirtualMachineSnapshot.RemoveSnapshotTask(ctx, req)
	if res.Fault() != nil {
		return res
	}
	task := ctx.Map.Get(res.(*methods.RemoveSnapshot_TaskBody).Res.Returnval).(*simulator.Task)
	task.Wait()
	if task.Info.State != types.TaskInfoStateSuccess {
		return res
	}
	vm := ctx.Map.Get(vmRef).(*simulator.VirtualMachine)
	// The VM's lock first, then c.mu, as in snapshot.
	ctx.WithLock(vm, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, d := range c.disks {
			if d.vm == vmRef && d.snapSeq != 0 {
				if err := d.endDelta(vm); err != nil {
					panic(fmt.Sprintf("vcsimtest: consolidating: %v", err))
				}
			}
		}
		delete(c.snaps, s.Self)
		c.Removed++
	})
	return res
}

func (v *cbtVM) QueryChangedDiskAreas(ctx *simulator.Context, req *types.QueryChangedDiskAreas) soap.HasFault {
	defer done(ctx, v.Self)
	c := v.c
	c.mu.Lock()
	defer c.mu.Unlock()
	c.Queries++
	body := &methods.QueryChangedDiskAreasBody{}
	fail := func(f types.BaseMethodFault, format string, a ...any) soap.HasFault {
		body.Fault_ = simulator.Fault(fmt.Sprintf(format, a...), f)
		return body
	}
	d := c.disk(v.Self, req.DeviceKey)
	if d == nil {
		return fail(&types.InvalidArgument{InvalidProperty: "deviceKey"}, "no tracked disk %d", req.DeviceKey)
	}
	if req.Snapshot == nil {
		return fail(&types.InvalidArgument{InvalidProperty: "snapshot"}, "a snapshot is required")
	}
	seqs, ok := c.snaps[*req.Snapshot]
	if !ok {
		return fail(&types.ManagedObjectNotFound{Obj: *req.Snapshot}, "no snapshot %s of a tracked VM", req.Snapshot.Value)
	}
	if v.Config.ChangeTrackingEnabled == nil || !*v.Config.ChangeTrackingEnabled || seqs[d.key] <= 0 || d.snapEp[seqs[d.key]] != d.epoch {
		return fail(&types.FileFault{}, "change tracking is not active on disk %d for this snapshot", d.key)
	}
	s := seqs[d.key]
	if req.StartOffset < 0 || req.StartOffset >= d.capacity || req.StartOffset%512 != 0 {
		return fail(&types.InvalidArgument{InvalidProperty: "startOffset"}, "startOffset %d is outside the disk or not sector aligned", req.StartOffset)
	}
	var blocks []int
	if req.ChangeId == "*" {
		var zero [32]byte = sha256.Sum256(make([]byte, CBTBlock))
		for i, h := range d.hashes[s] {
			if h != zero {
				blocks = append(blocks, i)
			}
		}
	} else {
		ep, n, ok := strings.Cut(req.ChangeId, "/")
		from, err := strconv.Atoi(n)
		if !ok || err != nil || ep != d.epoch || from < 1 || from > s {
			return fail(&types.InvalidArgument{InvalidProperty: "changeId"}, "change ID %q is not valid for this disk (tracking epoch %s, snapshot change %d)", req.ChangeId, d.epoch, s)
		}
		seen := map[int]bool{}
		for q := from + 1; q <= s; q++ {
			for _, b := range d.dirty[q] {
				seen[b] = true
			}
		}
		for b := range int(d.capacity / CBTBlock) {
			if seen[b] {
				blocks = append(blocks, b)
			}
		}
	}
	info := types.DiskChangeInfo{StartOffset: req.StartOffset, Length: d.capacity - req.StartOffset}
	for _, a := range runs(blocks) {
		start, end := a[0]*CBTBlock, a[1]*CBTBlock
		if end <= req.StartOffset {
			continue
		}
		start = max(start, req.StartOffset)
		if len(info.ChangedArea) == CBTPageLimit {
			last := info.ChangedArea[len(info.ChangedArea)-1]
			info.Length = last.Start + last.Length - req.StartOffset
			break
		}
		info.ChangedArea = append(info.ChangedArea, types.DiskChangeExtent{Start: start, Length: end - start})
	}
	body.Res = &types.QueryChangedDiskAreasResponse{Returnval: info}
	return body
}

// runs merges sorted block numbers into [first, end) runs.
func runs(blocks []int) [][2]int64 {
	var out [][2]int64
	for _, b := range blocks {
		if n := len(out); n > 0 && out[n-1][1] == int64(b) {
			out[n-1][1]++
			continue
		}
		out = append(out, [2]int64{int64(b), int64(b) + 1})
	}
	return out
}

func hashBlocks(file string, capacity int64) ([][32]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := make([][32]byte, capacity/CBTBlock)
	buf, zeros := make([]byte, CBTBlock), make([]byte, CBTBlock)
	zero := sha256.Sum256(zeros)
	for i := range out {
		clear(buf)
		if _, err := f.ReadAt(buf, int64(i)*CBTBlock); err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		if bytes.Equal(buf, zeros) {
			out[i] = zero
			continue
		}
		out[i] = sha256.Sum256(buf)
	}
	return out, nil
}

// newEpoch is a tracking epoch, in the form of vSphere's change IDs' first
// part.
func newEpoch() string {
	b := make([]byte, 16)
	rand.Read(b)
	return "52 " + hex.EncodeToString(b)
}

func diffBlocks(a, b [][32]byte) []int {
	var out []int
	for i := range b {
		if i >= len(a) || a[i] != b[i] {
			out = append(out, i)
		}
	}
	return out
}

func findDisk(vm *simulator.VirtualMachine, key int32) *types.VirtualDisk {
	for _, dev := range vm.Config.Hardware.Device {
		if d, ok := dev.(*types.VirtualDisk); ok && d.Key == key {
			return d
		}
	}
	return nil
}

// FlatDisk makes the VM's first disk a flat disk of size holding l
// ("[LocalDS_0] <vm>/disk1.vmdk", as the simulator names it) and tracks
// it; it returns the disk's key.
func (c *CBT) FlatDisk(t testing.TB, vm *simulator.VirtualMachine, size int64, l testimg.Layer) int32 {
	t.Helper()
	return c.flatDisk(t, vm, size, func(dir, name string) error {
		_, err := testimg.VMFSFlat(dir, name, 0x1111, size, l)
		return err
	})
}

// FlatDiskFrom is FlatDisk with the content of a raw image, copied
// sparsely: a real guest's disk, say.
func (c *CBT) FlatDiskFrom(t testing.TB, vm *simulator.VirtualMachine, raw string) int32 {
	t.Helper()
	fi, err := os.Stat(raw)
	if err != nil {
		t.Fatal(err)
	}
	return c.flatDisk(t, vm, fi.Size(), func(dir, name string) error {
		if out, err := exec.Command("cp", "--sparse=always", raw, filepath.Join(dir, name+"-flat.vmdk")).CombinedOutput(); err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		desc := testimg.Descriptor(0x1111, 0xffffffff, "vmfs", "", fmt.Sprintf("RW %d VMFS %q", fi.Size()/512, name+"-flat.vmdk"))
		return os.WriteFile(filepath.Join(dir, name+".vmdk"), desc, 0o644)
	})
}

func (c *CBT) flatDisk(t testing.TB, vm *simulator.VirtualMachine, size int64, write func(dir, name string) error) int32 {
	var d *types.VirtualDisk
	for _, dev := range vm.Config.Hardware.Device {
		if x, ok := dev.(*types.VirtualDisk); ok {
			d = x
			break
		}
	}
	if d == nil {
		t.Fatalf("vm %s has no disk", vm.Name)
	}
	p, err := backingPath(d)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(c.s.DatastoreDir(p.Datastore), path.Dir(p.Path))
	if err := write(dir, strings.TrimSuffix(path.Base(p.Path), ".vmdk")); err != nil {
		t.Fatal(err)
	}
	d.CapacityInBytes, d.CapacityInKB = size, size/1024
	if err := c.Track(vm, d.Key); err != nil {
		t.Fatal(err)
	}
	return d.Key
}

// backingPath is the datastore path of a flat disk's descriptor.
func backingPath(d *types.VirtualDisk) (object.DatastorePath, error) {
	var p object.DatastorePath
	b, ok := d.Backing.(*types.VirtualDiskFlatVer2BackingInfo)
	if !ok || !p.FromString(b.FileName) || !strings.HasSuffix(p.Path, ".vmdk") {
		return p, fmt.Errorf("disk %d is not a flat disk with a .vmdk descriptor", d.Key)
	}
	return p, nil
}
