package engine_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmware/govmomi/vim25/types"

	"github.com/vmconv/terraform-provider-vmconv/engine"
	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/engine/vsphere"
	"github.com/vmconv/terraform-provider-vmconv/internal/vcsimtest"
)

// TestWarmMigration runs a warm migration of a running VM through the
// engine's facade, against the test kit's changed block tracking: two
// syncs while the disk changes, nothing at the output before the cutover,
// then a cutover that shuts the VM down, syncs the last changes and
// converts. The output must be the disk as it was at the cutover, every
// write included, and the report must account for the downtime.
func TestWarmMigration(t *testing.T) {
	s := vcsimtest.Start(t)
	vm := s.VM("DC0_H0_VM0")
	cbt := s.EnableCBT()
	const size = 64 * mib
	key := cbt.FlatDisk(t, vm, size, baseLayer)
	live := func() string { return cbt.LivePath(vm, key) }
	write := func(off int64, b byte) {
		f, err := os.OpenFile(live(), os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteAt(bytes.Repeat([]byte{b}, 4096), off); err != nil {
			t.Fatal(err)
		}
	}
	e, err := engine.New(engine.Config{WorkDir: t.TempDir(), CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir() + "/web"
	req := engine.Request{
		Source: engine.SourceSpec{VSphere: &engine.VSphereSpec{URL: s.URL, Datacenter: "DC0", VM: "DC0_H0_VM0",
			Thumbprint: s.Thumbprint, Username: vcsimtest.User, Password: vcsimtest.Password, Warm: &engine.WarmSpec{}}},
		Output: engine.OutputSpec{Dir: out, Format: "raw"},
	}
	ctx := context.Background()
	pooled := req
	pooled.Output = engine.OutputSpec{Pool: "default", VM: true, Format: "raw"}
	if _, err := e.Plan(ctx, pooled, engine.PlanOptions{}); err == nil || !strings.Contains(err.Error(), "publishes into output.dir") {
		t.Fatalf("a warm migration into a pool: %v", err)
	}
	if st, err := e.WarmStatus(req); err != nil || st != nil {
		t.Fatalf("status before the first sync: %+v, %v", st, err)
	}
	if p, err := e.Plan(ctx, req, engine.PlanOptions{}); err != nil || p.Warm == nil || !p.Warm.Full || p.Warm.Reason != "the first copy" {
		t.Fatalf("the plan before the first sync: %v", err)
	}
	// A disk with snapshots of its own is refused before anything is done.
	var disk *types.VirtualDisk
	for _, d := range vm.Config.Hardware.Device {
		if x, ok := d.(*types.VirtualDisk); ok && x.Key == key {
			disk = x
		}
	}
	b := disk.Backing.(*types.VirtualDiskFlatVer2BackingInfo)
	base := *b
	b.Parent = &base
	if _, err := e.Plan(ctx, req, engine.PlanOptions{}); err == nil || !strings.Contains(err.Error(), "chain of 2 flat file(s)") {
		t.Fatalf("a disk with a snapshot: %v", err)
	}
	b.Parent = nil
	st, err := e.WarmSync(ctx, req, nil)
	if err != nil {
		t.Fatal(err)
	}
	write(10*mib, 0xc1) // a marker, as the running guest writes it
	write(40*mib+8192, 0xc2)
	if st, err = e.WarmSync(ctx, req, nil); err != nil {
		t.Fatal(err)
	}
	if len(st.Syncs) != 2 || st.Syncs[1].Full || st.Syncs[1].Disks[0].Areas != 2 {
		t.Fatalf("syncs %+v", st.Syncs)
	}
	if _, err := os.Stat(out); err == nil {
		t.Fatal("a sync wrote at the output")
	}
	if p, err := e.Plan(ctx, req, engine.PlanOptions{}); err != nil || p.Warm == nil || p.Warm.Full || p.Warm.Syncs != 2 || len(p.Warm.ChangeIDs) != 1 || p.Warm.ChangeIDs[0] != st.Disks[0].ChangeID {
		t.Fatalf("the plan after two syncs: %v", err)
	}
	write(20*mib, 0xc3) // the last write before the cutover

	req.Source.VSphere.Warm.Cutover = true
	p, err := e.Plan(ctx, req, engine.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if f := p.Stage(engine.StageFetch); !f.Run || !strings.Contains(f.Reason, "shut VM") || !strings.Contains(f.Reason, "sync the areas changed") {
		t.Fatalf("fetch stage of the cutover: %+v", f)
	}
	// A cutover that fails once the VM is down (its disk cannot be read
	// in the final sync) powers it on again, and the next one succeeds.
	vsphere.SetAfterSnapshotHook(func(context.Context) {
		os.Remove(filepath.Join(s.DatastoreDir("LocalDS_0"), "DC0_H0_VM0", "disk1-flat.vmdk"))
	})
	_, err = e.Apply(ctx, p, nil, engine.ApplyOptions{})
	vsphere.SetAfterSnapshotHook(nil)
	fe, ok := fault.As(err)
	if !ok || len(fe.Facts) == 0 || !strings.Contains(fe.Facts[len(fe.Facts)-1].Value, "powered on again") || vm.Runtime.PowerState != types.VirtualMachinePowerStatePoweredOn {
		t.Fatalf("a failed cutover: %v (%+v); the VM is %s", err, fe, vm.Runtime.PowerState)
	}
	if _, err := os.Stat(out); err == nil {
		t.Fatal("a failed cutover wrote at the output")
	}
	want, err := os.ReadFile(live())
	if err != nil {
		t.Fatal(err)
	}
	res, err := e.Apply(ctx, p, nil, engine.ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(res.Disks[0].Path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("the output is not the disk as it was at the cutover")
	}
	w := res.Warm
	if w == nil || w.PowerDown.How != "guest shutdown" || len(w.Syncs) != 3 || w.Syncs[2].Disks[0].Areas != 1 || w.DowntimeMS <= 0 || w.DowntimeMS < w.FinalSyncMS {
		t.Fatalf("warm result %+v", w)
	}
	if vm.Runtime.PowerState != types.VirtualMachinePowerStatePoweredOff || vm.Snapshot != nil {
		t.Errorf("after the cutover the VM is %s with snapshots %+v", vm.Runtime.PowerState, vm.Snapshot)
	}
	if st, _ := e.WarmStatus(req); st != nil {
		t.Error("the staging images outlived the cutover")
	}
	rep, err := engine.ReadVMReport(out)
	if err != nil || rep.Result.Warm == nil || rep.Result.Warm.DowntimeMS != w.DowntimeMS {
		t.Fatalf("the report's warm account: %v, %+v", err, rep)
	}
}
