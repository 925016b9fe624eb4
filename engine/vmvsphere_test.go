package engine_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmconv/terraform-provider-vmconv/engine"
	"github.com/vmconv/terraform-provider-vmconv/internal/testimg"
	"github.com/vmconv/terraform-provider-vmconv/internal/vcsimtest"
)

// A whole VM from vSphere (govmomi's simulator on loopback), two disks on
// SCSI units 0 and 1: the plan reads only the VM's configuration (its
// hardware and disks known, nothing copied), the apply copies both disks
// from one snapshot and converts them into one folder.
func TestApplyVMFromVSphere(t *testing.T) {
	s := vcsimtest.Start(t)
	vm := s.VM("DC0_H0_VM0")
	dir := filepath.Join(s.DatastoreDir("LocalDS_0"), "DC0_H0_VM0")
	if _, err := testimg.VMFSFlat(dir, "disk1", 0x1111, 8*mib, baseLayer); err != nil {
		t.Fatal(err)
	}
	if _, err := testimg.VMFSFlat(dir, "data", 0x3333, 8*mib, snap1); err != nil {
		t.Fatal(err)
	}
	vcsimtest.AddDisk(vm, "Hard disk 2", vcsimtest.SCSIKey(t, vm), 1, "[LocalDS_0] DC0_H0_VM0/data.vmdk", 8*mib)
	cache := t.TempDir()
	e, err := engine.New(engine.Config{WorkDir: t.TempDir(), CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "web")
	req := engine.Request{
		Source: engine.SourceSpec{VSphere: &engine.VSphereSpec{URL: s.URL, Datacenter: "DC0", VM: "DC0_H0_VM0", Snapshot: true,
			Thumbprint: s.Thumbprint, Username: vcsimtest.User, Password: vcsimtest.Password}},
		Output: engine.OutputSpec{Dir: out},
	}
	p, err := e.Plan(context.Background(), req, engine.PlanOptions{Inspect: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Disks) != 2 || p.Disks[0].Device != "scsi0:0" || p.Disks[1].Device != "scsi0:1" || !p.Disks[1].Source.Deferred ||
		p.Disks[1].Source.RemoteSize != 8*mib || p.Disks[1].Source.Path != "[LocalDS_0] DC0_H0_VM0/data.vmdk" {
		t.Fatalf("disks %+v", p.Disks)
	}
	h := p.Hardware
	if h == nil || h.VCPUs != int(vm.Config.Hardware.NumCPU) || h.MemoryMiB != int(vm.Config.Hardware.MemoryMB) || len(h.NICs) == 0 || h.NICs[0].MAC == "" {
		t.Errorf("hardware %+v", h)
	}
	if f := p.Stage(engine.StageFetch); !f.Run || !strings.Contains(f.Reason, "one snapshot") || strings.Contains(f.Reason, vcsimtest.Password) {
		t.Errorf("fetch stage %+v", f)
	}
	fixed := req
	fixed.Fixes.Enabled = true
	if pf, err := e.Plan(context.Background(), fixed, engine.PlanOptions{Inspect: true}); err != nil || pf.Guest == nil || pf.Guest.How != "skipped" {
		t.Errorf("plan with fixes: %v, guest %+v: a VM not fetched is inspected at apply", err, pf.Guest)
	}
	if es, _ := os.ReadDir(cache); len(es) != 0 {
		t.Errorf("the plan wrote %d entries in the cache", len(es))
	}
	if vm.Snapshot != nil && len(vm.Snapshot.RootSnapshotList) != 0 {
		t.Error("the plan took a snapshot")
	}
	res, err := e.Apply(context.Background(), p, nil, engine.ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []*testimg.Expected{testimg.NewExpected(8*mib, baseLayer), testimg.NewExpected(8*mib, snap1)} {
		got, err := testimg.ReadQcow2(res.Disks[i].Path)
		if err != nil {
			t.Fatal(err)
		}
		if err := want.Compare(got); err != nil {
			t.Errorf("disk %d: %v", i, err)
		}
	}
	if vm.Snapshot != nil && len(vm.Snapshot.RootSnapshotList) != 0 {
		t.Error("the snapshot was left behind")
	}
}
