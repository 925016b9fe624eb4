package provider_test

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/vmconv/terraform-provider-vmconv/internal/vcsimtest"
)

func regexpMust(s string) *regexp.Regexp { return regexp.MustCompile(s) }

// wrapTolerant compiles a pattern in which each space matches any run of
// white space, because terraform wraps diagnostics at its terminal width.
func wrapTolerant(pattern string) *regexp.Regexp {
	return regexp.MustCompile(strings.ReplaceAll(pattern, " ", `\s+`))
}

// dataPlaneOnly turns off the guest work for tests of the data plane alone:
// their disks hold patterns, not operating systems.
const dataPlaneOnly = `
  fixes { enabled = false }
  boot_test { enabled = false }
`

// noPreview turns plan-time inspection off, for steps that only boot a
// guest unfixed or with a fix disabled: its appliance launch costs a minute
// under software emulation.
const noPreview = "provider \"vmconv\" {\n  plan_inspection = false\n}\n"

// vsphereProvider is the provider configured with the vCenter simulator's
// credentials and a cache folder of its own.
func vsphereProvider(cache string) string {
	return fmt.Sprintf(`
provider "vmconv" {
  vsphere_username = %q
  vsphere_password = %q
  cache_dir        = %q
}
`, vcsimtest.User, vcsimtest.Password, cache)
}
