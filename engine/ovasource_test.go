package engine_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmconv/terraform-provider-vmconv/engine"
	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/internal/testimg"
)

// ovaIn writes an OVA the way vSphere exports one, with a VMware-layout
// streamOptimized disk.
func ovaIn(t *testing.T, dir string, l testimg.Layer) string {
	t.Helper()
	disk := filepath.Join(t.TempDir(), "web-disk1.vmdk")
	if err := testimg.StreamOptimized(disk, 8*mib, l); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "web.ova")
	if err := testimg.OVA(p, "web", testimg.OVF("web", "web-disk1.vmdk", 8, 4, 3072, false), disk); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestOVASource(t *testing.T) {
	e := newEngine(t)
	src, out := t.TempDir(), t.TempDir()
	ova := ovaIn(t, src, baseLayer)
	before := sumDir(t, src)
	req := engine.Request{Source: engine.SourceSpec{OVA: ova}, Output: engine.OutputSpec{Path: filepath.Join(out, "web.qcow2")}}
	p, err := e.Plan(context.Background(), req, engine.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Source.Kind != "ova" || p.Source.Path != ova || p.Source.Format != "vmdk" || p.Source.Subformat != "streamOptimized" || p.Source.VirtualSize != 8*mib {
		t.Errorf("source plan %+v", p.Source)
	}
	if o := p.Source.OVF; o == nil || o.CPUs != 4 || o.MemoryMiB != 3072 || o.Name != "web" {
		t.Errorf("OVF %+v", p.Source.OVF)
	}
	if f := p.Stage(engine.StageFetch); !f.Run || !strings.Contains(f.Reason, "web-disk1.vmdk") {
		t.Errorf("fetch stage %+v", f)
	}
	if _, err := e.Apply(context.Background(), p, nil, engine.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	data, err := testimg.ReadQcow2(req.Output.Path)
	if err != nil {
		t.Fatal(err)
	}
	if err := testimg.NewExpected(8*mib, baseLayer).Compare(data); err != nil {
		t.Fatal(err)
	}
	if after := sumDir(t, src); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Error("the OVA changed")
	}

	// A new archive at the same path: the plan that was made no longer
	// holds.
	os.Remove(ova)
	ovaIn(t, src, snap1)
	req.Output.Overwrite = true
	if _, err := e.Apply(context.Background(), p, nil, engine.ApplyOptions{}); fault.CodeOf(err) != fault.SourceChanged {
		t.Fatalf("apply of a stale plan: %v", err)
	}
	// Disk 1 does not exist.
	req.Source.OVADisk = 1
	if _, err := e.Plan(context.Background(), req, engine.PlanOptions{}); fault.CodeOf(err) != fault.InvalidRequest || !strings.Contains(err.Error(), "1 disk(s)") {
		t.Fatalf("plan of a missing disk: %v", err)
	}
}
