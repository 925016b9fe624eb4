package vsphere

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vmconv/terraform-provider-vmconv/internal/testimg"
	"github.com/vmconv/terraform-provider-vmconv/internal/vcsimtest"
)

const mib = testimg.MiB

// simVM is the simulator's VM DC0_H0_VM0, changed by a test as vSphere
// would change it.
type simVM struct {
	s  *vcsimtest.Server
	vm *simulator.VirtualMachine
}

func newSimVM(t *testing.T) *simVM {
	s := vcsimtest.Start(t)
	return &simVM{s: s, vm: s.VM("DC0_H0_VM0")}
}

// ds is the local path of a datastore path's file on LocalDS_0.
func (v *simVM) ds(rel string) string { return filepath.Join(v.s.DatastoreDir("LocalDS_0"), rel) }

// disk is the VM's disk backed by fileName (a datastore path).
func (v *simVM) disk(t *testing.T, fileName string) *types.VirtualDisk {
	for _, d := range v.vm.Config.Hardware.Device {
		if disk, ok := d.(*types.VirtualDisk); ok {
			if b, ok := disk.Backing.(*types.VirtualDiskFlatVer2BackingInfo); ok && b.FileName == fileName {
				return disk
			}
		}
	}
	t.Fatalf("the VM has no disk %s", fileName)
	return nil
}

// addDisk attaches a flat disk backed by fileName at unit of controller.
func (v *simVM) addDisk(label string, controller, unit int32, fileName string, size int64) {
	vcsimtest.AddDisk(v.vm, label, controller, unit, fileName, size)
}

// tasks counts the VM's tasks whose description ends with op.
func (v *simVM) tasks(op string) int {
	n := 0
	for _, ref := range v.vm.RecentTask {
		if task, ok := v.s.Model.Map().Get(ref).(*simulator.Task); ok && strings.HasSuffix(task.Info.DescriptionId, "."+op) {
			n++
		}
	}
	return n
}

func (v *simVM) connect(t *testing.T) *Client {
	c, err := Connect(context.Background(), Options{URL: v.s.URL, Username: vcsimtest.User, Password: vcsimtest.Password, Thumbprint: v.s.Thumbprint})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Logout(context.Background()) })
	return c
}

var (
	layerA   = testimg.Layer{{Offset: 0, Length: 1 * mib, Byte: 0xa1}, {Offset: 5 * mib, Length: 4096, Byte: 0xa2}}
	deltaA   = testimg.Layer{{Offset: 3 * mib, Length: 64 << 10, Byte: 0xa3}}
	layerB   = testimg.Layer{{Offset: 0, Length: 512 << 10, Byte: 0xb1}, {Offset: 3 * mib, Length: 8192, Byte: 0xb2}}
	laterB   = testimg.Layer{{Offset: 1 * mib, Length: 64 << 10, Byte: 0xee}}
	disk0Ds  = "[LocalDS_0] DC0_H0_VM0/disk1.vmdk"
	disk0Top = "[LocalDS_0] DC0_H0_VM0/disk1-000001.vmdk"
	disk1Ds  = "[LocalDS_0] other/disk1.vmdk"
)

// twoDiskVM gives the simulator's VM two disks with real content on
// SCSI units 0 and 1, whose files have the same names in two folders:
// "Hard disk 1" is a snapshot chain (a vmfsSparse delta over a flat base)
// in DC0_H0_VM0/, "Hard disk 2" a flat disk in other/.
func twoDiskVM(t *testing.T) *simVM {
	v := newSimVM(t)
	dir0, dir1 := v.ds("DC0_H0_VM0"), v.ds("other")
	if err := os.MkdirAll(dir1, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := testimg.VMFSFlat(dir0, "disk1", 0x1111, 8*mib, layerA); err != nil {
		t.Fatal(err)
	}
	if _, err := testimg.VMFSSparse(dir0, "disk1-000001", "disk1.vmdk", 0x2222, 0x1111, 8*mib, 1, deltaA); err != nil {
		t.Fatal(err)
	}
	d0 := v.disk(t, disk0Ds)
	base := *d0.Backing.(*types.VirtualDiskFlatVer2BackingInfo)
	top := base
	top.FileName, top.Parent = disk0Top, &base
	d0.Backing = &top
	d0.DeviceInfo = &types.Description{Label: "Hard disk 1", Summary: "Hard disk 1"}
	if _, err := testimg.VMFSFlat(dir1, "disk1", 0x3333, 4*mib, layerB); err != nil {
		t.Fatal(err)
	}
	v.addDisk("Hard disk 2", vcsimtest.SCSIKey(t, v.vm), 1, disk1Ds, 4*mib)
	return v
}

// sameFile fails unless the copy holds the datastore file's bytes.
func sameFile(t *testing.T, copied, original string) {
	t.Helper()
	a, err := os.ReadFile(copied)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(original)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Errorf("%s is not a copy of %s", copied, original)
	}
}

func TestFindVMDiskSlotsAgainstVcsim(t *testing.T) {
	v := twoDiskVM(t)
	// A SATA disk whose label sorts first still comes after the SCSI ones.
	v.vm.Config.Hardware.Device = append(v.vm.Config.Hardware.Device, &types.VirtualAHCIController{VirtualSATAController: types.VirtualSATAController{
		VirtualController: types.VirtualController{VirtualDevice: types.VirtualDevice{Key: 15000, DeviceInfo: &types.Description{Label: "SATA controller 0"}}, BusNumber: 0}}})
	v.addDisk("Hard disk 0", 15000, 0, "[LocalDS_0] other/sata.vmdk", 4*mib)
	vm, err := v.connect(t).FindVM(context.Background(), "DC0", "DC0_H0_VM0")
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ label, device, bus, head string }{
		{"Hard disk 1", "scsi0:0", "scsi", disk0Top},
		{"Hard disk 2", "scsi0:1", "scsi", disk1Ds},
		{"Hard disk 0", "sata0:0", "sata", "[LocalDS_0] other/sata.vmdk"},
	}
	if len(vm.Disks) != len(want) {
		t.Fatalf("disks %+v", vm.Disks)
	}
	for i, w := range want {
		d := vm.Disks[i]
		if d.Label != w.label || d.Device != w.device || d.Bus != w.bus || d.Controller != 0 || d.Chain[0] != w.head {
			t.Errorf("disk %d is %+v, want %+v", i, d, w)
		}
	}
	if vm.Disks[1].Unit != 1 || len(vm.Disks[0].Chain) != 2 {
		t.Errorf("disks %+v", vm.Disks)
	}
}

// TestFetchVMAgainstVcsim copies both disks of a VM from one snapshot.
// Right after the snapshot, the second disk moves to a new delta holding
// a write, as ESXi does while the guest runs: the copy must not have it.
func TestFetchVMAgainstVcsim(t *testing.T) {
	v := twoDiskVM(t)
	var hooks, snapshotsDuringCopy int
	SetAfterSnapshotHook(func(context.Context) {
		hooks++
		snapshotsDuringCopy = countSnapshots(v.vm.Snapshot.RootSnapshotList)
		if _, err := testimg.VMFSSparse(v.ds("other"), "disk1-000001", "disk1.vmdk", 0x4444, 0x3333, 4*mib, 1, laterB); err != nil {
			t.Error(err)
		}
		d1 := v.disk(t, disk1Ds)
		base := *d1.Backing.(*types.VirtualDiskFlatVer2BackingInfo)
		top := base
		top.FileName, top.Parent = "[LocalDS_0] other/disk1-000001.vmdk", &base
		d1.Backing = &top
	})
	t.Cleanup(func() { SetAfterSnapshotHook(nil) })

	c := v.connect(t)
	dir := t.TempDir()
	res, err := c.FetchVM(context.Background(), FetchVMOptions{Datacenter: "DC0", VM: "DC0_H0_VM0", Snapshot: true, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if hooks != 1 || snapshotsDuringCopy != 1 || v.tasks("createSnapshotEx") != 1 {
		t.Errorf("%d hook call(s), %d snapshot(s) during the copy, %d taken; want one", hooks, snapshotsDuringCopy, v.tasks("createSnapshotEx"))
	}
	if res.Snapshot == "" || !res.Removed || v.tasks("removeSnapshot") != 1 {
		t.Errorf("snapshot %q removed %v, %d removal(s)", res.Snapshot, res.Removed, v.tasks("removeSnapshot"))
	}
	if got, err := c.FindVM(context.Background(), "DC0", "DC0_H0_VM0"); err != nil || got.Snapshots != 0 {
		t.Errorf("after the copy: %v, %+v", err, got)
	}
	if len(res.Disks) != 2 || res.VM == nil || len(res.VM.Disks) != 2 || res.VM.Disks[0].Device != "scsi0:0" || res.VM.Disks[1].Device != "scsi0:1" {
		t.Fatalf("fetched %+v", res)
	}
	// Each disk in a folder of its own: both have a disk1.vmdk and a
	// disk1-flat.vmdk, and neither overwrote the other.
	d0, d1 := res.Disks[0], res.Disks[1]
	if d0.Head != filepath.Join(DiskDir(dir, 0), "disk1-000001.vmdk") || d1.Head != filepath.Join(DiskDir(dir, 1), "disk1.vmdk") {
		t.Errorf("heads %s and %s", d0.Head, d1.Head)
	}
	if len(d0.Files) != 4 || len(d1.Files) != 2 {
		t.Errorf("files %v and %v", d0.Files, d1.Files)
	}
	for _, f := range d0.Files {
		sameFile(t, f, v.ds(filepath.Join("DC0_H0_VM0", filepath.Base(f))))
	}
	for _, f := range d1.Files {
		sameFile(t, f, v.ds(filepath.Join("other", filepath.Base(f))))
	}
	for _, tc := range []struct {
		flat string
		want *testimg.Expected
	}{
		{filepath.Join(DiskDir(dir, 0), "disk1-flat.vmdk"), testimg.NewExpected(8*mib, layerA)},
		{filepath.Join(DiskDir(dir, 1), "disk1-flat.vmdk"), testimg.NewExpected(4*mib, layerB)},
	} {
		data, err := os.ReadFile(tc.flat)
		if err != nil {
			t.Fatal(err)
		}
		if err := tc.want.Compare(data); err != nil {
			t.Errorf("%s: %v", tc.flat, err)
		}
	}
	if _, err := os.Stat(filepath.Join(DiskDir(dir, 1), "disk1-000001.vmdk")); err == nil {
		t.Error("the second disk was read as it is now, not as of the snapshot")
	}

	// The control: without a snapshot the second disk's current delta,
	// with the later write, is what is read. The check above can fail.
	SetAfterSnapshotHook(nil)
	now, err := c.FetchVM(context.Background(), FetchVMOptions{Datacenter: "DC0", VM: "DC0_H0_VM0", Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if len(now.Disks) != 2 || filepath.Base(now.Disks[1].Head) != "disk1-000001.vmdk" || now.Snapshot != "" || v.tasks("createSnapshotEx") != 1 {
		t.Errorf("without a snapshot: %+v", now)
	}
}

// TestFetchVMRemovesSnapshotOnFailure makes the second disk's copy fail:
// its extent is gone from the datastore once the snapshot is taken. The
// error names the file, and the one snapshot is removed all the same.
func TestFetchVMRemovesSnapshotOnFailure(t *testing.T) {
	v := twoDiskVM(t)
	gone := v.ds(filepath.Join("other", "disk1-flat.vmdk"))
	SetAfterSnapshotHook(func(context.Context) {
		if err := os.Remove(gone); err != nil {
			t.Error(err)
		}
	})
	t.Cleanup(func() { SetAfterSnapshotHook(nil) })

	c := v.connect(t)
	dir := t.TempDir()
	res, err := c.FetchVM(context.Background(), FetchVMOptions{Datacenter: "DC0", VM: "DC0_H0_VM0", Snapshot: true, Dir: dir})
	if err == nil || res != nil || !strings.Contains(err.Error(), "disk1-flat.vmdk") {
		t.Fatalf("the copy did not fail on the missing extent: %v, %+v", err, res)
	}
	// The first disk was copied before the second one failed.
	sameFile(t, filepath.Join(DiskDir(dir, 0), "disk1-000001-delta.vmdk"), v.ds("DC0_H0_VM0/disk1-000001-delta.vmdk"))
	if v.tasks("createSnapshotEx") != 1 || v.tasks("removeSnapshot") != 1 {
		t.Errorf("%d snapshot(s) taken, %d removed; want one of each", v.tasks("createSnapshotEx"), v.tasks("removeSnapshot"))
	}
	if got, err := c.FindVM(context.Background(), "DC0", "DC0_H0_VM0"); err != nil || got.Snapshots != 0 {
		t.Errorf("after the failed copy: %v, %d snapshot(s) left", err, got.Snapshots)
	}
}

// TestFetchDiskAgainstVcsim: the single-disk copy shares the snapshot path
// with FetchVM and still writes one disk's files straight into Dir. Disk 1
// is the second in slot order ("Hard disk 2", scsi0:1).
func TestFetchDiskAgainstVcsim(t *testing.T) {
	v := twoDiskVM(t)
	c := v.connect(t)
	dir := t.TempDir()
	res, err := c.FetchDisk(context.Background(), FetchOptions{Datacenter: "DC0", VM: "DC0_H0_VM0", Disk: 1, Snapshot: true, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if res.Head != filepath.Join(dir, "disk1.vmdk") || len(res.Files) != 2 || res.Snapshot == "" || !res.Removed {
		t.Errorf("fetched %+v", res)
	}
	sameFile(t, filepath.Join(dir, "disk1-flat.vmdk"), v.ds("other/disk1-flat.vmdk"))
	if v.tasks("createSnapshotEx") != 1 || v.tasks("removeSnapshot") != 1 {
		t.Errorf("%d snapshot(s) taken, %d removed", v.tasks("createSnapshotEx"), v.tasks("removeSnapshot"))
	}
	if _, err := c.FetchDisk(context.Background(), FetchOptions{Datacenter: "DC0", VM: "DC0_H0_VM0", Disk: 2, Snapshot: true, Dir: dir}); err == nil ||
		!strings.Contains(err.Error(), "has 2 disk(s); disk 2 does not exist") {
		t.Errorf("disk 2 of 2: %v", err)
	}
	if v.tasks("removeSnapshot") != 2 {
		t.Errorf("the snapshot of the refused copy was not removed: %d removal(s)", v.tasks("removeSnapshot"))
	}
}
