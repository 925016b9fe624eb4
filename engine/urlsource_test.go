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
	"syscall"
	"testing"

	"github.com/vmconv/terraform-provider-vmconv/engine"
	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
)

// TestPlanRefusesADownloadThatCannotFit plans a URL source from the
// server's metadata: a length larger than the cache can take is refused at
// plan, naming the URL and the cache folder, before anything is fetched.
func TestPlanRefusesADownloadThatCannotFit(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root; CI runs as root")
	}
	cache := t.TempDir()
	if err := syscall.Mount("tmpfs", cache, "tmpfs", 0, "size=16m"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	defer syscall.Unmount(cache, syscall.MNT_DETACH)
	var gets atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(64<<20))
		w.Header().Set("ETag", `"v1"`)
		if r.Method != http.MethodHead {
			gets.Add(1)
		}
	}))
	defer srv.Close()
	e, err := engine.New(engine.Config{WorkDir: t.TempDir(), CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	req := engine.Request{
		Source: engine.SourceSpec{URL: &engine.URLSpec{Href: srv.URL + "/disk.vmdk?token=s3cret"}},
		Output: engine.OutputSpec{Path: filepath.Join(out, "disk.qcow2")},
	}
	_, err = e.Plan(context.Background(), req, engine.PlanOptions{})
	fe, ok := fault.As(err)
	if !ok || fe.Code != fault.NoSpace || fe.File != srv.URL+"/disk.vmdk?REDACTED" || !strings.Contains(fe.Msg, cache) {
		t.Fatalf("plan: %v; want no_space naming the URL and the cache folder", err)
	}
	if n := gets.Load(); n != 0 {
		t.Errorf("the plan sent %d GETs", n)
	}
	if es, _ := os.ReadDir(out); len(es) != 0 {
		t.Errorf("the plan wrote %d files in the output folder", len(es))
	}
}
