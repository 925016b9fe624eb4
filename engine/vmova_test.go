package engine_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmconv/terraform-provider-vmconv/engine"
	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/internal/testimg"
)

// A whole VM from an OVA: every disk of the OVF, in the order the VM
// attached them (not the descriptor's), with the OVF's hardware, into one
// folder; the archive is untouched.
func TestApplyVMFromOVA(t *testing.T) {
	src, tmp := t.TempDir(), t.TempDir()
	boot, data := filepath.Join(tmp, "web-boot.vmdk"), filepath.Join(tmp, "web-data.vmdk")
	if err := testimg.StreamOptimized(boot, 8*mib, snap1); err != nil {
		t.Fatal(err)
	}
	if err := testimg.StreamOptimized(data, 8*mib, baseLayer); err != nil {
		t.Fatal(err)
	}
	// DiskSection lists the data disk first; the VM attached it second.
	ova := filepath.Join(src, "web.ova")
	ovf := testimg.VMOVF("web", 2, 1024, []string{"web-data.vmdk", "web-boot.vmdk"}, []string{"scsi0:1", "scsi0:0"}, 8)
	if err := testimg.OVA(ova, "web", ovf, data, boot); err != nil {
		t.Fatal(err)
	}
	before := sumDir(t, src)
	e := newEngine(t)
	out := filepath.Join(t.TempDir(), "web")
	p, err := e.Plan(context.Background(), engine.Request{Source: engine.SourceSpec{OVA: ova}, Output: engine.OutputSpec{Dir: out}}, engine.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Source.Kind != "ova" || len(p.Disks) != 2 || p.Disks[0].Device != "scsi0:0" || p.Disks[1].Device != "scsi0:1" {
		t.Fatalf("plan source %+v disks %+v", p.Source, p.Disks)
	}
	if h := p.Hardware; h == nil || h.VCPUs != 2 || h.MemoryMiB != 1024 || len(h.NICs) != 1 || h.NICs[0].MAC != "00:50:56:8a:3c:1e" {
		t.Errorf("hardware %+v", p.Hardware)
	}
	if f := p.Stage(engine.StageFetch); !f.Run || !strings.Contains(f.Reason, "every disk") {
		t.Errorf("fetch stage %+v", f)
	}
	if p.Disks[0].Output.Path != filepath.Join(out, "web-disk0.qcow2") {
		t.Errorf("disk 0 output %s", p.Disks[0].Output.Path)
	}
	res, err := e.Apply(context.Background(), p, nil, engine.ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []*testimg.Expected{testimg.NewExpected(8*mib, snap1), testimg.NewExpected(8*mib, baseLayer)} {
		got, err := testimg.ReadQcow2(res.Disks[i].Path)
		if err != nil {
			t.Fatal(err)
		}
		if err := want.Compare(got); err != nil {
			t.Errorf("disk %d (%s): %v", i, p.Disks[i].Device, err)
		}
	}
	if after := sumDir(t, src); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Error("the OVA changed")
	}
	// The same archive still converts one disk at a time: disk 0 of the
	// descriptor is the data disk.
	one := filepath.Join(t.TempDir(), "data.qcow2")
	p1, err := e.Plan(context.Background(), engine.Request{Source: engine.SourceSpec{OVA: ova}, Output: engine.OutputSpec{Path: one}}, engine.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Apply(context.Background(), p1, nil, engine.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := testimg.ReadQcow2(one)
	if err != nil {
		t.Fatal(err)
	}
	if err := testimg.NewExpected(8*mib, baseLayer).Compare(got); err != nil {
		t.Errorf("disk 0 alone: %v", err)
	}
}

// An OVF that attaches two disks at one slot cannot say which disk the
// guest named which: the whole VM is refused naming the slot, and each
// disk still converts alone.
func TestVMFromOVASlotConflict(t *testing.T) {
	src, tmp := t.TempDir(), t.TempDir()
	a, b := filepath.Join(tmp, "a.vmdk"), filepath.Join(tmp, "b.vmdk")
	for _, p := range []string{a, b} {
		if err := testimg.StreamOptimized(p, 8*mib, baseLayer); err != nil {
			t.Fatal(err)
		}
	}
	ova := filepath.Join(src, "web.ova")
	if err := testimg.OVA(ova, "web", testimg.VMOVF("web", 1, 512, []string{"a.vmdk", "b.vmdk"}, []string{"scsi0:0", "scsi0:0"}, 8), a, b); err != nil {
		t.Fatal(err)
	}
	e := newEngine(t)
	out := filepath.Join(t.TempDir(), "web")
	_, err := e.Plan(context.Background(), engine.Request{Source: engine.SourceSpec{OVA: ova}, Output: engine.OutputSpec{Dir: out}}, engine.PlanOptions{})
	if fe, ok := fault.As(err); !ok || fe.Code != fault.CorruptDescriptor || !strings.Contains(fe.Msg, "scsi0:0") || !strings.Contains(fe.File, ova) {
		t.Fatalf("whole VM: %v, want corrupt_descriptor naming scsi0:0 and the OVA", err)
	}
	if _, err := e.Plan(context.Background(), engine.Request{Source: engine.SourceSpec{OVA: ova, OVADisk: 1}, Output: engine.OutputSpec{Path: filepath.Join(t.TempDir(), "b.qcow2")}}, engine.PlanOptions{}); err != nil {
		t.Fatalf("one disk alone: %v", err)
	}
}
