package engine

import (
	"path/filepath"
	"testing"
)

// TestPlanRecordChangesClearedByApply: a plan that changes a conversion
// is recorded as such, and applying it (by request, as Update does, with a
// relative path) clears the mark, so the source may change afterwards.
func TestPlanRecordChangesClearedByApply(t *testing.T) {
	e, err := New(Config{WorkDir: t.TempDir(), CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Chdir(t.TempDir())
	out, _ := filepath.Abs("web.qcow2")
	p := &Plan{Source: SourcePlan{Path: "/src/web.vmdk", Fingerprint: "v1:a"}, Output: OutputPlan{Path: out}}
	if err := e.RecordPlanned(p, true); err != nil {
		t.Fatal(err)
	}
	if r, ok := e.LastPlanned(out); !ok || !r.Changes || r.Fingerprint != "v1:a" || r.Source != "/src/web.vmdk" {
		t.Fatalf("recorded %+v, %v", r, ok)
	}
	var req Request
	req.Source.Path, req.Output.Path = "/src/web.vmdk", "web.qcow2"
	if err := e.AppliedPlanned(req); err != nil {
		t.Fatal(err)
	}
	if r, ok := e.LastPlanned(out); !ok || r.Changes || r.Fingerprint != "v1:a" {
		t.Fatalf("after the apply the record is %+v, %v; want the same source with no change pending", r, ok)
	}
	// A whole VM's plan is kept under its folder.
	dir, _ := filepath.Abs("vm")
	if err := e.RecordPlanned(&Plan{Source: SourcePlan{Path: "/src/vm.vmx", Fingerprint: "v1:b"}, Output: OutputPlan{Path: dir}}, true); err != nil {
		t.Fatal(err)
	}
	req.Output.Path, req.Output.Dir, req.Source.Path = "", "vm", "/src/vm.vmx"
	if err := e.AppliedPlanned(req); err != nil {
		t.Fatal(err)
	}
	if r, _ := e.LastPlanned(dir); r == nil || r.Changes {
		t.Fatalf("the VM's record after the apply: %+v", r)
	}
}
