package provider_test

import (
	"os"
	"regexp"
	"strings"
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
  fixes     = { enabled = false }
  boot_test = { enabled = false }
`

func osMkdirAll(p string) error { return os.MkdirAll(p, 0o755) }
