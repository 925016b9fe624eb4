package engine_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmconv/terraform-provider-vmconv/engine"
	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/engine/output"
	"github.com/vmconv/terraform-provider-vmconv/internal/testimg"
)

// twoDiskVM writes testimg's two-disk VM folder (see TwoDiskVM).
func twoDiskVM(t *testing.T) (vmx string, heads []string) {
	t.Helper()
	vm, err := testimg.TwoDiskVM(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return vm.VMX, vm.Heads
}

// A whole VM is planned disk by disk in the VM's order, each chain
// checked and measured, one image per disk named after the VM, the sizes
// summed, and the hardware taken from the .vmx. Nothing is written.
func TestPlanVM(t *testing.T) {
	vmx, heads := twoDiskVM(t)
	out := filepath.Join(t.TempDir(), "web")
	e := newEngine(t)
	req := engine.Request{Source: engine.SourceSpec{VMX: vmx}, Output: engine.OutputSpec{Dir: out}}
	p, err := e.Plan(context.Background(), req, engine.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Disks) != 2 {
		t.Fatalf("%d disks planned", len(p.Disks))
	}
	var sum int64
	for i, want := range []struct {
		dev, head string
		layers    int
		size      int64
	}{{"scsi0:0", heads[0], 2, 8 * mib}, {"scsi0:1", heads[1], 1, 8 * mib}} {
		d := p.Disks[i]
		real, _ := filepath.EvalSymlinks(want.head)
		if d.Device != want.dev || d.Source.Path != real || len(d.Source.Chain) != want.layers || d.Source.VirtualSize != want.size {
			t.Errorf("disk %d: %s %s, %d layers, %d bytes", i, d.Device, d.Source.Path, len(d.Source.Chain), d.Source.VirtualSize)
		}
		if d.Output.Path != filepath.Join(out, fmt.Sprintf("web-disk%d.qcow2", i)) || d.Output.EstimatedSize <= 0 {
			t.Errorf("disk %d output %+v", i, d.Output)
		}
		sum += d.Output.EstimatedSize
	}
	if p.Output.Path != out || p.Output.EstimatedSize != sum || p.Guest != nil || p.Stage(engine.StageInspect).Run {
		t.Errorf("output %s estimated %d, disks sum to %d", p.Output.Path, p.Output.EstimatedSize, sum)
	}
	h := p.Hardware
	if h == nil || h.VCPUs != 2 || h.MemoryMiB != 1024 || h.Firmware != "bios" || len(h.NICs) != 1 || h.NICs[0].MAC != "00:0c:29:aa:bb:cc" {
		t.Errorf("hardware %+v", h)
	}
	if p.Source.Kind != "vmx" || p.Source.Path != vmx || p.Source.Fingerprint == "" {
		t.Errorf("source %+v", p.Source)
	}
	// With fixes on, the estimate keeps room for what they write, once
	// for the VM (the guest inspected at apply when the plan may not).
	fixed := req
	fixed.Fixes.Enabled = true
	f, err := e.Plan(context.Background(), fixed, engine.PlanOptions{})
	if err != nil || f.Output.EstimatedSize != sum+engine.FixAllowance || f.Guest == nil || f.Guest.How != "skipped" {
		t.Errorf("with fixes: %v, estimated %d, guest %+v", err, f.Output.EstimatedSize, f.Guest)
	}
	if !strings.Contains(p.Stage(engine.StageConvert).Reason, "2 qcow2 image(s)") {
		t.Errorf("convert: %s", p.Stage(engine.StageConvert).Reason)
	}
	if _, err := os.Lstat(out); !os.IsNotExist(err) {
		t.Errorf("the plan created %s", out)
	}
	// The fingerprint covers every disk: a write to the second changes it.
	q, err := e.Plan(context.Background(), req, engine.PlanOptions{})
	if err != nil || q.Source.Fingerprint != p.Source.Fingerprint {
		t.Fatalf("replan: %v, %s vs %s", err, q.Source.Fingerprint, p.Source.Fingerprint)
	}
	// Moving the data disk to another slot changes the VM too.
	b, _ := os.ReadFile(vmx)
	moved := strings.ReplaceAll(string(b), "scsi0:1.", "scsi0:2.")
	if err := os.WriteFile(vmx, []byte(moved), 0o644); err != nil {
		t.Fatal(err)
	}
	if q, err := e.Plan(context.Background(), req, engine.PlanOptions{}); err != nil || q.Source.Fingerprint == p.Source.Fingerprint || q.Disks[1].Device != "scsi0:2" {
		t.Errorf("moving disk 1 to scsi0:2 left the fingerprint %s (%v)", p.Source.Fingerprint, err)
	}
	os.WriteFile(vmx, b, 0o644)
	if err := testimg.QemuWrite(heads[1], "vmdk", testimg.Snap2); err != nil {
		t.Fatal(err)
	}
	if q, err := e.Plan(context.Background(), req, engine.PlanOptions{}); err != nil || q.Source.Fingerprint == p.Source.Fingerprint {
		t.Errorf("a write to disk 1 left the fingerprint %s (%v)", p.Source.Fingerprint, err)
	}
}

// A whole VM is applied disk by disk and published as one folder: every
// image converted from its own chain, the report inside, the sources
// untouched; a second apply replaces the set as a whole.
func TestApplyVM(t *testing.T) {
	vmx, heads := twoDiskVM(t)
	out := filepath.Join(t.TempDir(), "web")
	e := newEngine(t)
	req := engine.Request{Source: engine.SourceSpec{VMX: vmx}, Output: engine.OutputSpec{Dir: out}}
	before := sumDir(t, filepath.Dir(vmx))
	p, err := e.Plan(context.Background(), req, engine.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := e.Apply(context.Background(), p, nil, engine.ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Disks) != 2 || res.Output.Path != out || res.Output.ReportPath != filepath.Join(out, engine.VMReportName) {
		t.Fatalf("result %+v", res)
	}
	for i, want := range []*testimg.Expected{testimg.NewExpected(8*mib, baseLayer, snap1), testimg.NewExpected(8*mib, baseLayer)} {
		d := res.Disks[i]
		if d.Path != p.Disks[i].Output.Path || d.SHA256 == "" {
			t.Errorf("disk %d: %+v", i, d)
		}
		data, err := testimg.ReadQcow2(d.Path)
		if err != nil {
			t.Fatal(err)
		}
		if err := want.Compare(data); err != nil {
			t.Errorf("disk %d: %v", i, err)
		}
	}
	var rep engine.Report
	if b, err := os.ReadFile(res.Output.ReportPath); err != nil || json.Unmarshal(b, &rep) != nil || len(rep.Result.Disks) != 2 || rep.Plan.Hardware == nil {
		t.Errorf("report: %v", err)
	}
	if after := sumDir(t, filepath.Dir(vmx)); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("the source changed:\n%v\n%v", before, after)
	}
	// Unmanaged, the published set is refused; managed, it is replaced.
	if _, err := e.Plan(context.Background(), req, engine.PlanOptions{}); !fault.Is(err, fault.OutputExists) {
		t.Errorf("an unmanaged existing VM: %v", err)
	}
	if err := testimg.QemuWrite(heads[1], "vmdk", testimg.Snap2); err != nil {
		t.Fatal(err)
	}
	p2, err := e.Plan(context.Background(), req, engine.PlanOptions{ManagedOutput: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Apply(context.Background(), p2, nil, engine.ApplyOptions{ManagedOutput: true}); err != nil {
		t.Fatal(err)
	}
	data, err := testimg.ReadQcow2(p2.Disks[1].Output.Path)
	if err != nil {
		t.Fatal(err)
	}
	if err := testimg.NewExpected(8*mib, testimg.Merge(baseLayer, testimg.Snap2)).Compare(data); err != nil {
		t.Errorf("the replaced disk 1: %v", err)
	}
	es, _ := os.ReadDir(filepath.Dir(out))
	if len(es) != 1 {
		t.Errorf("beside the VM's folder: %v", es)
	}
	// A domain running on one of the images keeps the set from being
	// replaced under it.
	overlay := filepath.Join(t.TempDir(), "disk0.qcow2")
	os.WriteFile(overlay, nil, 0o644)
	if err := output.AddHold(p2.Disks[0].Output.Path, output.Hold{Domain: "web", Overlay: overlay}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Apply(context.Background(), p2, nil, engine.ApplyOptions{ManagedOutput: true}); !fault.Is(err, fault.DiskInUse) {
		t.Errorf("replacing a held VM: %v", err)
	}
	// Once the domain is gone, its emptied holds file does not make the
	// set look foreign.
	if err := output.RemoveHold(p2.Disks[0].Output.Path, overlay); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Apply(context.Background(), p2, nil, engine.ApplyOptions{ManagedOutput: true}); err != nil {
		t.Errorf("replacing the VM once its domain is gone: %v", err)
	}
	// A plan made before a source changed is refused at apply, and the
	// published set stays as it was.
	if err := testimg.QemuWrite(heads[0], "vmdk", testimg.Snap2); err != nil {
		t.Fatal(err)
	}
	sum := fileSum(t, p2.Disks[0].Output.Path)
	if _, err := e.Apply(context.Background(), p2, nil, engine.ApplyOptions{ManagedOutput: true}); !fault.Is(err, fault.SourceChanged) {
		t.Errorf("a stale plan: %v", err)
	}
	if fileSum(t, p2.Disks[0].Output.Path) != sum {
		t.Error("a refused apply changed the published set")
	}
}

func fileSum(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", sha256.Sum256(b))
}

// The output folder is never someone else's: a non-empty folder, a file,
// or a folder whose parent is missing is refused, and nothing is written.
func TestPlanVMOutputDir(t *testing.T) {
	vmx, _ := twoDiskVM(t)
	e := newEngine(t)
	base := t.TempDir()
	full := filepath.Join(base, "full")
	os.Mkdir(full, 0o755)
	os.WriteFile(filepath.Join(full, "keep.txt"), []byte("mine"), 0o644)
	file := filepath.Join(base, "file")
	os.WriteFile(file, []byte("mine"), 0o644)
	empty := filepath.Join(base, "empty")
	os.Mkdir(empty, 0o755)
	// The plan judges the folder as the apply will: a link to an empty
	// folder is refused too (the rename would replace the link).
	link := filepath.Join(base, "link")
	os.Symlink(empty, link)
	for _, tc := range []struct {
		dir  string
		code fault.Code
	}{
		{full, fault.OutputExists},
		{file, fault.OutputExists},
		{link, fault.OutputExists},
		{filepath.Join(base, "no", "such"), fault.OutputDirMissing},
		{empty, ""},
	} {
		_, err := e.Plan(context.Background(), engine.Request{Source: engine.SourceSpec{VMX: vmx}, Output: engine.OutputSpec{Dir: tc.dir}}, engine.PlanOptions{})
		if fault.CodeOf(err) != tc.code && !(tc.code == "" && err == nil) {
			t.Errorf("%s: got %v, want %q", tc.dir, err, tc.code)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(full, "keep.txt")); string(b) != "mine" {
		t.Error("the user's file changed")
	}
	if es, _ := os.ReadDir(empty); len(es) != 0 {
		t.Errorf("the plan wrote %v", es)
	}
	// A single-disk source is not a VM.
	_, err := e.Plan(context.Background(), engine.Request{Source: engine.SourceSpec{Path: vmx[:len(vmx)-4] + ".vmdk"}, Output: engine.OutputSpec{Dir: empty}}, engine.PlanOptions{})
	if err == nil {
		t.Error("a single disk planned as a VM")
	}
}
