package provider_test

import (
	"regexp"
	"strings"
)

func regexpMust(s string) *regexp.Regexp { return regexp.MustCompile(s) }

// wrapTolerant compiles a pattern in which each space matches any run of
// white space, because terraform wraps diagnostics at its terminal width.
func wrapTolerant(pattern string) *regexp.Regexp {
	return regexp.MustCompile(strings.ReplaceAll(pattern, " ", `\s+`))
}
