package provider_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"

	"github.com/vmconv/terraform-provider-vmconv/internal/acctest"
	"github.com/vmconv/terraform-provider-vmconv/internal/testimg"
)

// boundedCache is a cache folder on a small tmpfs, so that a regression of
// the bounds fills it and not the machine's disk. Without root it is an
// ordinary folder, and ok is false: callers then keep their claims small.
func boundedCache(t *testing.T, size int64) (dir string, ok bool) {
	t.Helper()
	dir = t.TempDir()
	if os.Geteuid() != 0 {
		return dir, false
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d", size)); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir, true
}

// checkLeftNothing asserts a refusal left nothing in the output folder,
// no fetched file in the cache, and the cache next to empty (counted in
// blocks on disk, as du does).
func checkLeftNothing(t *testing.T, outDir, cache string) {
	t.Helper()
	if es, _ := os.ReadDir(outDir); len(es) != 0 {
		t.Errorf("a refusal left %d files in the output folder", len(es))
	}
	du, err := testimg.DiskUsage(cache)
	if err != nil || du > 64<<10 {
		t.Errorf("the cache takes %d bytes on disk after a refusal (%v)", du, err)
	}
	// What FETCH writes; plans/ holds the plan records, which stay.
	for _, kind := range []string{"url", "ova"} {
		filepath.Walk(filepath.Join(cache, kind), func(p string, fi os.FileInfo, err error) error {
			if err == nil && !fi.IsDir() {
				t.Errorf("left in the cache: %s", p)
			}
			return nil
		})
	}
}

// TestAccDiskConversion_ovaTarBomb plans an OVA whose disk member is a PAX
// sparse file claiming 100 GiB in a 20 KiB archive: the plan refuses it as
// unsafe, naming the OVA and its member, and writes nothing.
func TestAccDiskConversion_ovaTarBomb(t *testing.T) {
	cache, bounded := boundedCache(t, 64<<20)
	claim := int64(100) << 30
	if !bounded {
		claim = 1 << 30
	}
	ova := filepath.Join(t.TempDir(), "web.ova")
	if err := testimg.SparseOVA(ova, "web", testimg.OVF("web", "web-disk1.vmdk", claim>>20, 2, 2048, false), "web-disk1.vmdk", claim, "pax-1.0"); err != nil {
		t.Fatal(err)
	}
	outDir := t.TempDir()
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { acctest.PreCheck(t) },
		ProtoV6ProviderFactories: acctest.ProviderFactories,
		Steps: []resource.TestStep{{
			Config: fmt.Sprintf("provider \"vmconv\" {\n  cache_dir = %s\n}\n", acctest.HCLString(cache)) +
				ovaConversion(ova, filepath.Join(outDir, "web.qcow2"), dataPlaneOnly),
			ExpectError: wrapTolerant(fmt.Sprintf(`(?s)Archive Rejected As Unsafe.*sparse file claiming %d bytes.*File: %s member web-disk1\.vmdk`, claim, regexp.QuoteMeta(ova))),
		}},
	})
	checkLeftNothing(t, outDir, cache)
}

// TestAccDiskConversion_urlEndlessBody applies a URL source whose server
// announces no length and never stops sending: the download stops at the
// cache's room, the apply fails saying so, without promising a resume, and
// the partial download is gone. Root only: the cache must be a small file
// system to fill.
func TestAccDiskConversion_urlEndlessBody(t *testing.T) {
	cache, bounded := boundedCache(t, 32<<20)
	if !bounded {
		t.Skip("needs a small tmpfs as the cache, which needs root; CI runs as root")
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK) // chunked: no Content-Length
		if r.Method == http.MethodHead {
			return
		}
		buf := bytes.Repeat([]byte("endless "), 8192)
		for r.Context().Err() == nil {
			if _, err := w.Write(buf); err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	outDir := t.TempDir()
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { acctest.PreCheck(t) },
		ProtoV6ProviderFactories: acctest.ProviderFactories,
		Steps: []resource.TestStep{{
			Config: fmt.Sprintf(`
provider "vmconv" {
  cache_dir = %s
}

resource "vmconv_disk_conversion" "web" {
  source {
    url { href = %s }
  }
  output { path = %s }
%s
}
`, acctest.HCLString(cache), acctest.HCLString(srv.URL+"/web.vmdk?sig=s3cret"), acctest.HCLString(filepath.Join(outDir, "web.qcow2")), dataPlaneOnly),
			ExpectError: wrapTolerant(`(?s)Not Enough Free Space.*announced no length.*URL: ` + regexp.QuoteMeta(srv.URL) + `/web\.vmdk\?REDACTED.*The part downloaded was removed`),
		}},
	})
	checkLeftNothing(t, outDir, cache)
}
