package engine_test

import (
	"context"
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmconv/terraform-provider-vmconv/engine"
	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/internal/testimg"
)

// corruptOVA writes an OVA whose disk member is a streamOptimized VMDK cut
// short: the archive itself is sound (its manifest matches), the disk is
// not, so the fault comes from the disk's own parser reading the cache.
func corruptOVA(t *testing.T, dir string) string {
	t.Helper()
	disk := filepath.Join(t.TempDir(), "web-disk1.vmdk")
	if err := testimg.StreamOptimized(disk, 8*mib, baseLayer); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(disk)
	if err := os.Truncate(disk, fi.Size()/2); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "web.ova")
	if err := testimg.OVA(p, "web", testimg.OVF("web", "web-disk1.vmdk", 8, 2, 2048, false), disk); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestFaultsNameWhatTheUserWrote plans sources that FETCH brings into the
// cache and that turn out to be bad: the faults must name the OVA member or
// the URL (without its secrets) the user wrote, never the cache file.
func TestFaultsNameWhatTheUserWrote(t *testing.T) {
	ova := corruptOVA(t, t.TempDir())
	// 1 GiB, not 100: should the refusal regress, the bomb fills the cache.
	bomb := filepath.Join(t.TempDir(), "bomb.ova")
	if err := testimg.SparseOVA(bomb, "web", testimg.OVF("web", "web-disk1.vmdk", 1024, 2, 2048, false), "web-disk1.vmdk", 1<<30, "pax-1.0"); err != nil {
		t.Fatal(err)
	}
	garbage := make([]byte, 1<<20)
	rand.Read(garbage)
	mux := http.NewServeMux()
	mux.HandleFunc("/web.ova", func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, ova) })
	mux.HandleFunc("/bomb.ova", func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, bomb) })
	mux.HandleFunc("/disk.vmdk", func(w http.ResponseWriter, r *http.Request) { w.Write(garbage) })
	srv := httptest.NewServer(mux)
	defer srv.Close()

	cases := map[string]struct {
		src  engine.SourceSpec
		file string
	}{
		"ova": {engine.SourceSpec{OVA: ova}, ova + " member web-disk1.vmdk"},
		"ova url": {engine.SourceSpec{OVAURL: &engine.URLSpec{Href: srv.URL + "/web.ova?sig=s3cret-sig"}},
			srv.URL + "/web.ova?REDACTED member web-disk1.vmdk"},
		"ova url, hostile member": {engine.SourceSpec{OVAURL: &engine.URLSpec{Href: srv.URL + "/bomb.ova"}}, srv.URL + "/bomb.ova member web-disk1.vmdk"},
		"url":                     {engine.SourceSpec{URL: &engine.URLSpec{Href: srv.URL + "/disk.vmdk?token=s3cret-token"}}, srv.URL + "/disk.vmdk?REDACTED"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			cache := t.TempDir()
			e, err := engine.New(engine.Config{WorkDir: t.TempDir(), CacheDir: cache})
			if err != nil {
				t.Fatal(err)
			}
			req := engine.Request{Source: tc.src, Output: engine.OutputSpec{Path: filepath.Join(t.TempDir(), "web.qcow2")}}
			_, err = e.Plan(context.Background(), req, engine.PlanOptions{Fetch: true})
			fe, ok := fault.As(err)
			if !ok || fe.Code == fault.Internal {
				t.Fatalf("plan of a bad source: %v", err)
			}
			if fe.File != tc.file {
				t.Errorf("the fault names %q, want %q", fe.File, tc.file)
			}
			// Everything the diagnostic shows.
			shown := fe.Error() + "\n" + fe.Hint
			for _, f := range fe.Facts {
				shown += "\n" + f.Label + ": " + f.Value
			}
			if strings.Contains(shown, cache) || strings.Contains(shown, "s3cret") {
				t.Errorf("the diagnostic shows the cache or a secret:\n%s", shown)
			}
			t.Logf("%s: %s", fe.Code, shown)
		})
	}
}
