package engine

import (
	"sort"

	"github.com/vmconv/terraform-provider-vmconv/engine/fingerprint"
)

// ChangedFiles names the files that differ between two sets of stamps:
// "<path> (modified)", "<path> (new)" or "<path> (gone)", sorted. It is
// empty when either side has no stamps (a source fingerprinted as a whole:
// an archive, a remote object).
func ChangedFiles(before, after map[string]fingerprint.Stamp) []string {
	if len(before) == 0 || len(after) == 0 {
		return nil
	}
	var out []string
	for p, s := range after {
		switch o, ok := before[p]; {
		case !ok:
			out = append(out, p+" (new)")
		case !o.Equal(s):
			out = append(out, p+" (modified)")
		}
	}
	for p := range before {
		if _, ok := after[p]; !ok {
			out = append(out, p+" (gone)")
		}
	}
	sort.Strings(out)
	return out
}
