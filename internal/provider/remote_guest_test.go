package provider_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"

	"github.com/vmconv/terraform-provider-vmconv/internal/acctest"
	"github.com/vmconv/terraform-provider-vmconv/internal/testimg"
)

// TestAccGuest_fromOVAOverHTTP takes the whole pipeline from a remote
// source: the fixture guest exported as an OVA (OVF, manifest,
// streamOptimized disk) is served by an HTTP server on loopback, then
// downloaded, extracted, inspected, fixed, converted and booted on virtio
// with its network up.
func TestAccGuest_fromOVAOverHTTP(t *testing.T) {
	t.Parallel()
	fx := acctest.GuestFixtures(t)
	dir := acctest.SharedTempDir(t)
	ova := filepath.Join(dir, "web", "web.ova")
	if err := os.MkdirAll(filepath.Dir(ova), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := testimg.OVA(ova, "web", testimg.OVF("web", "plain-stream.vmdk", 4096, 1, 1024, false), fx.Path(fx.Stream)); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(filepath.Dir(ova))))
	defer srv.Close()
	out := filepath.Join(dir, "web.qcow2")
	cfg := fmt.Sprintf(`
resource "vmconv_disk_conversion" "guest" {
  source {
    ova { url = %q }
  }
  output { path = %q }
  %s
}
`, srv.URL+"/web.ova", out, kvmBoot)
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { acctest.PreCheck(t) },
		ProtoV6ProviderFactories: acctest.ProviderFactories,
		Steps: []resource.TestStep{{
			Config: cfg,
			Check: resource.ComposeAggregateTestCheckFunc(
				checkBoot("virtio"),
				checkFixes("network", "fstab", "grub", "initramfs"),
				resource.TestCheckResourceAttr(guestAddr, "guest.distro", "debian"),
				checkOutputUntouched(out),
			),
		}},
	})
}
