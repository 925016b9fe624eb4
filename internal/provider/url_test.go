package provider_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/vmconv/terraform-provider-vmconv/internal/acctest"
	"github.com/vmconv/terraform-provider-vmconv/internal/testimg"
)

// TestAccDiskConversion_url converts a VMDK from a real HTTP server on
// loopback that wants a bearer token and drops the first download half
// way: the plan works from the server's metadata, the apply resumes the
// download with a Range request, the output is right, and neither the
// token nor the URL's query reaches the state, the plan file or the report.
func TestAccDiskConversion_url(t *testing.T) {
	const token, querySecret = "Bearer t0ken-7c1f9", "q-s3cret-55e2"
	disk, err := testimg.VMDKChain(t.TempDir(), "web", "monolithicSparse", 8*mib, baseLayer)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := os.ReadFile(disk[0])
	var mu sync.Mutex
	var gets, ranges []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != token {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		mu.Lock()
		first := r.Method == http.MethodGet && len(gets) == 0
		if r.Method == http.MethodGet {
			gets = append(gets, r.URL.RawQuery)
			ranges = append(ranges, r.Header.Get("Range"))
		}
		mu.Unlock()
		w.Header().Set("ETag", `"web-1"`)
		if first {
			w.Header().Set("Content-Length", fmt.Sprint(len(body)))
			w.WriteHeader(http.StatusOK)
			w.Write(body[:len(body)/2])
			w.(http.Flusher).Flush()
			if c, _, err := w.(http.Hijacker).Hijack(); err == nil {
				c.Close()
			}
			return
		}
		http.ServeContent(w, r, "web.vmdk", time.Unix(1e9, 0), strings.NewReader(string(body)))
	}))
	defer srv.Close()

	outDir := t.TempDir()
	out := filepath.Join(outDir, "web.qcow2")
	cache := t.TempDir()
	const cfg = `
provider "vmconv" {
  cache_dir = %q
}

resource "vmconv_disk_conversion" "web" {
  source {
    url {
      href    = %q
      headers = { Authorization = %q }
    }
  }
  output {
    path   = %q
    format = %s
  }
  plan_path = %q
%s
}
`
	config := func(format string) string {
		return fmt.Sprintf(cfg, cache, srv.URL+"/web.vmdk?sig="+querySecret, token, out, format, out+".plan.json", dataPlaneOnly)
	}
	getsBefore := 0
	const name = "vmconv_disk_conversion.web"
	noSecrets := func(what, text string) error {
		for _, s := range []string{"t0ken-7c1f9", querySecret} {
			if strings.Contains(text, s) {
				return fmt.Errorf("%s holds a secret (%s)", what, s)
			}
		}
		return nil
	}
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { acctest.PreCheck(t) },
		ProtoV6ProviderFactories: acctest.ProviderFactories,
		Steps: []resource.TestStep{{
			Config: config(`"qcow2"`),
			ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
				// Planned from the server's metadata: content facts come after FETCH.
				plancheck.ExpectKnownValue(name, tfjsonpath.New("source_fingerprint"), knownvalue.StringRegexp(regexpMust(`^url:v1:[0-9a-f]{64}$`))),
				plancheck.ExpectUnknownValue(name, tfjsonpath.New("source_format")),
				plancheck.ExpectUnknownValue(name, tfjsonpath.New("virtual_size")),
			}},
			Check: resource.ComposeAggregateTestCheckFunc(
				checkOutput(out, testimg.NewExpected(8*mib, baseLayer)),
				resource.TestCheckResourceAttr(name, "source_format", "vmdk"),
				resource.TestCheckResourceAttr(name, "virtual_size", fmt.Sprint(8*mib)),
				resource.TestCheckNoResourceAttr(name, "source.url.headers.%"),
				func(s *terraform.State) error {
					mu.Lock()
					defer mu.Unlock()
					if len(ranges) < 2 || ranges[0] != "" || ranges[1] != fmt.Sprintf("bytes=%d-", len(body)/2) {
						return fmt.Errorf("the download did not resume where it dropped: ranges %q", ranges)
					}
					for k, v := range s.RootModule().Resources[name].Primary.Attributes {
						if err := noSecrets("state attribute "+k, v); err != nil && k != "source.url.href" {
							return err
						}
					}
					for _, f := range []string{out + ".plan.json", out + ".vmconv.json"} {
						b, err := os.ReadFile(f)
						if err != nil {
							return err
						}
						if err := noSecrets(f, string(b)); err != nil {
							return err
						}
					}
					return nil
				}),
		}, {
			// A replacement (another format) reads the download it kept:
			// destroying the old output does not delete what the new one
			// is about to read.
			PreConfig: func() {
				mu.Lock()
				getsBefore = len(gets)
				mu.Unlock()
			},
			Config: config(`"raw"`),
			ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
				plancheck.ExpectResourceAction(name, plancheck.ResourceActionDestroyBeforeCreate),
			}},
			Check: func(*terraform.State) error {
				mu.Lock()
				defer mu.Unlock()
				if len(gets) != getsBefore {
					return fmt.Errorf("the replacement downloaded again: %d GET(s) after the first apply's %d", len(gets), getsBefore)
				}
				return nil
			},
		}},
		CheckDestroy: func(*terraform.State) error {
			// The download was this output's alone: destroy removed it,
			// leaving only the entry's (empty) lock file.
			if left, _ := filepath.Glob(filepath.Join(cache, "url", "*")); len(left) != 0 {
				return fmt.Errorf("%v outlived terraform destroy", left)
			}
			held, _ := filepath.Glob(filepath.Join(cache, "holds", "*"))
			if len(held) != 1 || !strings.HasSuffix(held[0], ".lock") {
				return fmt.Errorf("the cache's holds after destroy: %v, want the entry's lock file alone", held)
			}
			return nil
		},
	})
}
