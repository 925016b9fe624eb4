package engine_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmware/govmomi/vim25/types"

	"github.com/vmconv/terraform-provider-vmconv/engine"
	"github.com/vmconv/terraform-provider-vmconv/engine/vsphere"
	"github.com/vmconv/terraform-provider-vmconv/internal/testimg"
	"github.com/vmconv/terraform-provider-vmconv/internal/vcsimtest"
)

// TestVSphereSource migrates a disk from govmomi's vCenter simulator on
// loopback. Its datastore holds a real ESXi-layout disk (a vmfs descriptor
// and its flat extent). Right after vmconv takes its snapshot, the test
// does what ESXi does, the VM's disk becomes a vmfsSparse delta on top of
// the base, and writes to that delta, as the running guest would; it also
// ends vmconv's vSphere session, as an expiry would. The output must hold
// the disk as of the snapshot, without the write; the copy must finish by
// logging in again; and the snapshot must be gone afterwards.
func TestVSphereSource(t *testing.T) {
	s := vcsimtest.Start(t)
	dir := filepath.Join(s.DatastoreDir("LocalDS_0"), "DC0_H0_VM0")
	if _, err := testimg.VMFSFlat(dir, "disk1", 0x1111, 8*mib, baseLayer); err != nil {
		t.Fatal(err)
	}
	afterSnap := testimg.Layer{{Offset: 2 * mib, Length: 64 << 10, Byte: 0xee}}
	vm := s.VM("DC0_H0_VM0")
	var hooked bool
	vsphere.SetAfterSnapshotHook(func(ctx context.Context) {
		hooked = true
		if _, err := testimg.VMFSSparse(dir, "disk1-000001", "disk1.vmdk", 0x2222, 0x1111, 8*mib, 1, afterSnap); err != nil {
			t.Error(err)
		}
		for _, d := range vm.Config.Hardware.Device {
			if disk, ok := d.(*types.VirtualDisk); ok {
				base := *disk.Backing.(*types.VirtualDiskFlatVer2BackingInfo)
				delta := base
				delta.FileName, delta.Parent = "[LocalDS_0] DC0_H0_VM0/disk1-000001.vmdk", &base
				disk.Backing = &delta
			}
		}
		// The session expires in the middle of the copy.
		if err := s.EndOtherSessions(ctx); err != nil {
			t.Error(err)
		}
	})
	t.Cleanup(func() { vsphere.SetAfterSnapshotHook(nil) })

	e := newEngine(t)
	out := filepath.Join(t.TempDir(), "web.qcow2")
	req := engine.Request{
		Source: engine.SourceSpec{VSphere: &engine.VSphereSpec{URL: s.URL, Datacenter: "DC0", VM: "DC0_H0_VM0", Snapshot: true,
			Thumbprint: s.Thumbprint, Username: vcsimtest.User, Password: vcsimtest.Password}},
		Output: engine.OutputSpec{Path: out},
	}
	p, err := e.Plan(context.Background(), req, engine.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !p.Source.Deferred || p.Source.Kind != "vsphere" || !p.Stage(engine.StageFetch).Run {
		t.Fatalf("plan %+v", p.Source)
	}
	var events []engine.Event
	if _, err := e.Apply(context.Background(), p, engine.SinkFunc(func(ev engine.Event) { events = append(events, ev) }), engine.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	if !hooked {
		t.Fatal("no snapshot was taken")
	}
	data, err := testimg.ReadQcow2(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := testimg.NewExpected(8*mib, baseLayer).Compare(data); err != nil {
		t.Fatalf("the output is not the disk as of the snapshot: %v", err)
	}
	c, err := vsphere.Connect(context.Background(), vsphere.Options{URL: s.URL, Username: vcsimtest.User, Password: vcsimtest.Password, Thumbprint: s.Thumbprint})
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.FindVM(context.Background(), "DC0", "DC0_H0_VM0")
	if err != nil {
		t.Fatal(err)
	}
	if got.Snapshots != 0 {
		t.Errorf("%d snapshot(s) left behind", got.Snapshots)
	}
	var relogin bool
	for _, ev := range events {
		if ev.Stage == engine.StageFetch && strings.Contains(ev.Message, "re-login") && !strings.Contains(ev.Message, " 0 re-login") {
			relogin = true
		}
	}
	if !relogin {
		t.Errorf("the copy did not log in again after the session ended: %v", events)
	}

	// The control: without a snapshot, the VM's current disk (the delta
	// with the write) is what is read. The test above can fail.
	req.Source.VSphere.Snapshot = false
	req.Output.Path = filepath.Join(t.TempDir(), "current.qcow2")
	vsphere.SetAfterSnapshotHook(nil)
	p, err = e.Plan(context.Background(), req, engine.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Apply(context.Background(), p, nil, engine.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	data, _ = testimg.ReadQcow2(req.Output.Path)
	if err := testimg.NewExpected(8*mib, baseLayer, afterSnap).Compare(data); err != nil {
		t.Fatalf("the control read: %v", err)
	}
	if _, err := os.Stat(out); err != nil {
		t.Fatal(err)
	}
}
