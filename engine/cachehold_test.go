package engine_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vmconv/terraform-provider-vmconv/engine"
)

// countingServer serves file, counting the bytes of bodies sent.
func countingServer(t *testing.T, file string) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var sent atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, err := os.Open(file)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		defer f.Close()
		fi, _ := f.Stat()
		w.Header().Set("ETag", `"v1"`)
		cw := &countingWriter{ResponseWriter: w, n: &sent}
		http.ServeContent(cw, r, "disk.qcow2", fi.ModTime(), f)
	}))
	t.Cleanup(srv.Close)
	return srv, &sent
}

type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	// A slow body keeps the first download going while the second apply
	// reaches the cache entry.
	time.Sleep(5 * time.Millisecond)
	c.n.Add(int64(len(b)))
	return c.ResponseWriter.Write(b)
}

// TestCacheEntriesSharedAndReleased: two applies of one URL source at once
// download it once (the second waits for the entry's lock and reuses the
// download); each output is recorded as a user of the entry; deleting one
// keeps the entry for the other, deleting the last removes it; and an
// entry a plan means to create an output from (a replacement) stays for
// its apply.
func TestCacheEntriesSharedAndReleased(t *testing.T) {
	disk := filepath.Join(t.TempDir(), "disk.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", disk, "64M").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img: %v: %s", err, out)
	}
	if out, err := exec.Command("qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 0 4M", disk).CombinedOutput(); err != nil {
		t.Fatalf("qemu-io: %v: %s", err, out)
	}
	fi, _ := os.Stat(disk)
	srv, sent := countingServer(t, disk)
	cache := t.TempDir()
	e, err := engine.New(engine.Config{WorkDir: t.TempDir(), CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	outDir := t.TempDir()
	reqFor := func(name string) engine.Request {
		return engine.Request{
			Source: engine.SourceSpec{URL: &engine.URLSpec{Href: srv.URL + "/disk.qcow2"}},
			Output: engine.OutputSpec{Path: filepath.Join(outDir, name), Format: "qcow2"},
		}
	}
	// Each apply has an engine of its own, as two provider processes
	// (two workspaces) sharing a cache folder do.
	apply := func(name string) *engine.Report {
		t.Helper()
		e, err := engine.New(engine.Config{WorkDir: t.TempDir(), CacheDir: cache})
		if err != nil {
			t.Error(err)
			return nil
		}
		req := reqFor(name)
		p, err := e.Plan(ctx, req, engine.PlanOptions{})
		if err != nil {
			t.Error(err)
			return nil
		}
		if _, err := e.Apply(ctx, p, nil, engine.ApplyOptions{}); err != nil {
			t.Error(err)
			return nil
		}
		rep, err := engine.ReadReport(req.Output.Path)
		if err != nil {
			t.Error(err)
		}
		return rep
	}
	var a, b *engine.Report
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); a = apply("a.qcow2") }()
	go func() { defer wg.Done(); b = apply("b.qcow2") }()
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	if n := sent.Load(); n != fi.Size() {
		t.Errorf("the server sent %d bytes for a %d-byte file: downloaded more than once", n, fi.Size())
	}
	if len(a.Result.CacheEntries) != 1 || len(b.Result.CacheEntries) != 1 || a.Result.CacheEntries[0] != b.Result.CacheEntries[0] {
		t.Fatalf("cache entries: %v and %v, want one, the same", a.Result.CacheEntries, b.Result.CacheEntries)
	}
	entry := a.Result.CacheEntries[0]
	if users, _ := os.ReadDir(filepath.Join(cache, "holds", "url-"+filepath.Base(entry)+".users")); len(users) != 2 {
		t.Errorf("%d users recorded, want 2", len(users))
	}

	release := func(rep *engine.Report) {
		t.Helper()
		if err := engine.DeleteOutput(rep.Plan.Request.Output.Path); err != nil {
			t.Fatal(err)
		}
		e.ReleaseSource(ctx, rep)
	}
	release(a)
	if _, err := os.Stat(entry); err != nil {
		t.Fatalf("deleting one of two users removed the entry: %v", err)
	}
	release(b)
	if _, err := os.Stat(entry); !os.IsNotExist(err) {
		t.Fatalf("the entry outlived its last user: %v", err)
	}

	// A replacement: the create is planned (a plan that creates records
	// the output as a planned user), the old output deleted, then the
	// create applied, reading the entry it was planned from.
	c := apply("c.qcow2")
	if _, err := e.Plan(ctx, reqFor("c.qcow2"), engine.PlanOptions{ManagedOutput: true, Creates: true}); err != nil {
		t.Fatal(err)
	}
	release(c)
	if _, err := os.Stat(entry); err != nil {
		t.Fatalf("a replaced output's entry was removed before its create: %v", err)
	}
	c = apply("c.qcow2")
	// A routine plan of an output that exists records nothing: its
	// destroy removes the entry.
	if _, err := e.Plan(ctx, reqFor("c.qcow2"), engine.PlanOptions{ManagedOutput: true}); err != nil {
		t.Fatal(err)
	}
	release(c)
	if _, err := os.Stat(entry); !os.IsNotExist(err) {
		t.Fatalf("the entry outlived its last user after a replacement: %v", err)
	}
	// Nothing outside the cache is touched, whatever a report says.
	outside := t.TempDir()
	forged := *c
	res := *c.Result
	res.CacheEntries = []string{outside, filepath.Join(cache, "..", filepath.Base(outside))}
	forged.Result = &res
	e.ReleaseSource(ctx, &forged)
	if _, err := os.Stat(outside); err != nil {
		t.Fatalf("a folder outside the cache was removed: %v", err)
	}
}
