package engine_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/vmconv/terraform-provider-vmconv/engine"
	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/engine/output"
)

// applyVM converts twoDiskVM into a new folder and returns the folder and
// the result.
func applyVM(t *testing.T) (string, *engine.Result) {
	t.Helper()
	vmx, _ := twoDiskVM(t)
	out := filepath.Join(t.TempDir(), "web")
	e := newEngine(t)
	p, err := e.Plan(context.Background(), engine.Request{Source: engine.SourceSpec{VMX: vmx}, Output: engine.OutputSpec{Dir: out}}, engine.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := e.Apply(context.Background(), p, nil, engine.ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return out, res
}

// A published VM's report reads back with its disks and hardware, and
// each image's drift is told apart: unchanged, modified, deleted, and the
// whole folder gone.
func TestVMOutputReportAndDrift(t *testing.T) {
	out, res := applyVM(t)
	rep, err := engine.ReadVMReport(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Result.Disks) != 2 || rep.Plan.Hardware == nil || rep.Plan.Request.Output.Dir != out || rep.Result.Disks[1].SHA256 != res.Disks[1].SHA256 {
		t.Fatalf("report: %+v", rep.Result)
	}
	if _, err := engine.ReadVMReport(filepath.Dir(out)); err == nil {
		t.Error("a folder without a VM report read")
	}
	check := func(want engine.Drift, disks ...engine.Drift) {
		t.Helper()
		got, drifts, err := engine.CheckVMOutput(out, res.Disks)
		if err != nil || got != want || !slices.Equal(drifts, disks) {
			t.Errorf("drift %s %v (%v), want %s %v", got, drifts, err, want, disks)
		}
	}
	check(engine.DriftNone, engine.DriftNone, engine.DriftNone)
	f, err := os.OpenFile(res.Disks[1].Path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("tampered"), 0)
	f.Close()
	check(engine.DriftChanged, engine.DriftNone, engine.DriftChanged)
	os.Remove(res.Disks[0].Path)
	check(engine.DriftChanged, engine.DriftMissing, engine.DriftChanged)
	os.RemoveAll(out)
	check(engine.DriftMissing)
}

// DeleteVMOutput removes the folder, its boot log and its lock file, and
// nothing else; it refuses while a domain holds one of the disks, and a
// folder that holds someone's files, leaving both untouched.
func TestDeleteVMOutput(t *testing.T) {
	out, res := applyVM(t)
	parent := filepath.Dir(out)
	os.WriteFile(output.BootLogPath(out), []byte("console"), 0o644)
	os.WriteFile(filepath.Join(parent, "keep.txt"), []byte("mine"), 0o644)

	// A domain runs on an overlay of disk 1.
	overlay := filepath.Join(t.TempDir(), "overlay.qcow2")
	os.WriteFile(overlay, nil, 0o644)
	if err := output.AddHold(res.Disks[1].Path, output.Hold{Domain: "test-web", Overlay: overlay}); err != nil {
		t.Fatal(err)
	}
	if err := engine.DeleteVMOutput(out); !fault.Is(err, fault.DiskInUse) {
		t.Fatalf("a held disk: %v", err)
	}
	if _, err := engine.ReadVMReport(out); err != nil {
		t.Fatalf("the refused delete touched the folder: %v", err)
	}
	// The domain is gone (its overlay with it): its hold lapses.
	os.Remove(overlay)

	// A file the user put into the folder is never deleted.
	mine := filepath.Join(out, "notes.txt")
	os.WriteFile(mine, []byte("mine"), 0o644)
	if err := engine.DeleteVMOutput(out); !fault.Is(err, fault.OutputExists) {
		t.Fatalf("a folder with the user's file: %v", err)
	}
	if b, _ := os.ReadFile(mine); string(b) != "mine" {
		t.Fatal("the user's file changed")
	}
	os.Remove(mine)

	if err := engine.DeleteVMOutput(out); err != nil {
		t.Fatal(err)
	}
	es, _ := os.ReadDir(parent)
	if len(es) != 1 || es[0].Name() != "keep.txt" {
		t.Errorf("after delete the parent holds %v", es)
	}
	if err := engine.DeleteVMOutput(out); err != nil {
		t.Errorf("deleting again: %v", err)
	}
}
