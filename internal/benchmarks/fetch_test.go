package benchmarks

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25/soap"

	"github.com/vmconv/terraform-provider-vmconv/engine/fetch"
	"github.com/vmconv/terraform-provider-vmconv/internal/vcsimtest"
)

const fetchSize = 512 << 20

// fetchFixture is a file of random bytes, made once.
func fetchFixture(b *testing.B) string {
	p := filepath.Join(fixtureDir(b), "fetch512m.bin")
	if fi, err := os.Stat(p); err == nil && fi.Size() == fetchSize {
		return p
	}
	f, err := os.Create(p)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.CopyN(f, rand.Reader, fetchSize); err != nil {
		b.Fatal(err)
	}
	f.Close()
	return p
}

// BenchmarkFetch measures the FETCH transport's throughput on loopback,
// from a plain HTTP server and from vcsim's datastore /folder interface,
// with one stream and with 4 parallel ranges. Every download is hashed
// (SHA-256) and fsynced, as in an apply.
func BenchmarkFetch(b *testing.B) {
	src := fetchFixture(b)
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, src) }))
	defer web.Close()

	vc := vcsimtest.Start(b)
	dsDir := vc.DatastoreDir("LocalDS_0")
	if err := os.Link(src, filepath.Join(dsDir, "big.bin")); err != nil {
		b.Fatal(err)
	}
	u, _ := soap.ParseURL(vc.URL)
	folder := object.NewDatastoreURL(*u, "/DC0", "LocalDS_0", "big.bin")
	sc := soap.NewClient(u, false)
	sc.SetThumbprint(u.Host, vc.Thumbprint)

	for _, tc := range []struct {
		name   string
		url    string
		client *http.Client
	}{{"http", web.URL + "/big.bin", nil}, {"vcsim-folder", folder.String(), &sc.Client}} {
		for _, par := range []int{1, 4} {
			b.Run(fmt.Sprintf("%s/ranges=%d", tc.name, par), func(b *testing.B) {
				b.SetBytes(fetchSize)
				for i := 0; i < b.N; i++ {
					dest := filepath.Join(b.TempDir(), "out.bin")
					if _, err := fetch.HTTP(context.Background(), tc.url, dest, fetch.HTTPOptions{Parallel: par, HTTPClient: tc.client}); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
