package engine_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/vmconv/terraform-provider-vmconv/engine"
	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/internal/testimg"
)

// A VM given disk by disk (source.disks): a local snapshot chain and a
// disk on an HTTP server. The plan reads only the server's metadata (no
// GET), lists the disks in the order given on consecutive SCSI units, and
// the apply fetches the remote one, checks it and converts both into one
// folder, named after the folder.
func TestApplyVMFromDiskList(t *testing.T) {
	src := t.TempDir()
	chainFiles, err := testimg.VMDKChain(src, "boot", "monolithicSparse", 8*mib, baseLayer, snap1)
	if err != nil {
		t.Fatal(err)
	}
	head := chainFiles[0]
	data := filepath.Join(t.TempDir(), "data.vmdk")
	if err := testimg.StreamOptimized(data, 8*mib, baseLayer); err != nil {
		t.Fatal(err)
	}
	var gets atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			gets.Add(1)
		}
		http.ServeFile(w, r, data)
	}))
	defer srv.Close()
	before := sumDir(t, src)
	e := newEngine(t)
	out := filepath.Join(t.TempDir(), "db")
	req := engine.Request{
		Source: engine.SourceSpec{Disks: []engine.SourceSpec{{Path: head}, {URL: &engine.URLSpec{Href: srv.URL + "/data.vmdk?token=s3cret"}}}},
		Output: engine.OutputSpec{Dir: out},
	}
	p, err := e.Plan(context.Background(), req, engine.PlanOptions{Inspect: true})
	if err != nil {
		t.Fatal(err)
	}
	if n := gets.Load(); n != 0 {
		t.Errorf("the plan sent %d GETs", n)
	}
	if len(p.Disks) != 2 || p.Disks[0].Device != "scsi0:0" || p.Disks[1].Device != "scsi0:1" || p.Disks[0].Source.Deferred || !p.Disks[1].Source.Deferred {
		t.Fatalf("disks %+v", p.Disks)
	}
	if !p.Source.Deferred || p.Source.Kind != "disks" || p.Hardware != nil || strings.Contains(fmt.Sprint(p.Disks[1].Source), "s3cret") {
		t.Errorf("source %+v hardware %+v", p.Source, p.Hardware)
	}
	if d := p.Disks[1].Output.Path; d != filepath.Join(out, "db-disk1.qcow2") {
		t.Errorf("disk 1 output %s", d)
	}
	if f := p.Stage(engine.StageFetch); !f.Run || !strings.Contains(f.Reason, "disk 1:") {
		t.Errorf("fetch stage %+v", f)
	}
	res, err := e.Apply(context.Background(), p, nil, engine.ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []*testimg.Expected{testimg.NewExpected(8*mib, baseLayer, snap1), testimg.NewExpected(8*mib, baseLayer)} {
		got, err := testimg.ReadQcow2(res.Disks[i].Path)
		if err != nil {
			t.Fatal(err)
		}
		if err := want.Compare(got); err != nil {
			t.Errorf("disk %d: %v", i, err)
		}
	}
	if after := sumDir(t, src); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Error("the local disk changed")
	}
	// Planned again, now that the download is in the cache, the VM is
	// the same VM: its fingerprint does not depend on whether a disk was
	// fetched yet.
	again, err := e.Plan(context.Background(), req, engine.PlanOptions{ManagedOutput: true})
	if err != nil {
		t.Fatal(err)
	}
	if again.Source.Fingerprint != p.Source.Fingerprint || again.Source.Deferred {
		t.Errorf("fingerprint %s (deferred %v), planned %s", again.Source.Fingerprint, again.Source.Deferred, p.Source.Fingerprint)
	}
	// A write to the local disk after the plan is caught at apply.
	p2, err := e.Plan(context.Background(), engine.Request{Source: req.Source, Output: engine.OutputSpec{Dir: filepath.Join(t.TempDir(), "x")}}, engine.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f, _ := os.OpenFile(head, os.O_WRONLY|os.O_APPEND, 0)
	f.Write(make([]byte, 512))
	f.Close()
	if _, err := e.Apply(context.Background(), p2, nil, engine.ApplyOptions{}); fault.CodeOf(err) != fault.SourceChanged {
		t.Fatalf("apply after the local disk changed: %v", err)
	}
}

// A list may hold only single disks, and a listed disk's fault says which.
func TestDiskListRefusals(t *testing.T) {
	e := newEngine(t)
	vmx, heads := twoDiskVM(t)
	out := filepath.Join(t.TempDir(), "vm")
	for name, tc := range map[string]struct {
		disks []engine.SourceSpec
		code  fault.Code
		fact  string
	}{
		"a VM in the list": {[]engine.SourceSpec{{VMX: vmx}}, fault.InvalidRequest, ""},
		"a missing disk":   {[]engine.SourceSpec{{Path: heads[1]}, {Path: "/nonexistent/x.vmdk"}}, fault.SourceMissing, "source.disks[1]"},
		"two kinds in one": {[]engine.SourceSpec{{Path: vmx, VMX: vmx}}, fault.InvalidRequest, "source.disks[0]"},
		"too many disks":   {make([]engine.SourceSpec, 61), fault.InvalidRequest, ""},
		// The boot disk's base layer, with its snapshot beside it: the
		// output would silently lack the snapshot's writes.
		"an older snapshot": {[]engine.SourceSpec{{Path: filepath.Join(filepath.Dir(heads[0]), "web.vmdk")}}, fault.OlderSnapshot, "source.disks[0]"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := e.Plan(context.Background(), engine.Request{Source: engine.SourceSpec{Disks: tc.disks}, Output: engine.OutputSpec{Dir: out}}, engine.PlanOptions{})
			fe, ok := fault.As(err)
			if !ok || fe.Code != tc.code {
				t.Fatalf("err = %v, want %s", err, tc.code)
			}
			if tc.fact != "" && !strings.Contains(fmt.Sprint(fe.Facts), tc.fact) {
				t.Errorf("facts %v do not name %s", fe.Facts, tc.fact)
			}
			if _, err := os.Stat(out); err == nil {
				t.Error("the output folder was created")
			}
		})
	}
}
