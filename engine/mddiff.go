package engine

import (
	"fmt"
	"strings"
)

// smallDiff is a line diff of a guest file before and after a fix: the
// lines removed (-) and added (+), each run with one line of context, and
// "…" for what is left out. Files are small (fstab, a GRUB configuration),
// so a plain longest-common-subsequence table is enough; past a bound the
// diff only counts lines.
func smallDiff(before, after string) string {
	a, b := splitLines(before), splitLines(after)
	if len(a)*len(b) > 4_000_000 {
		return fmt.Sprintf("(%d lines before, %d after: too long to show here; the JSON report has both)\n", len(a), len(b))
	}
	// lcs[i][j] is the common subsequence's length of a[i:] and b[j:].
	lcs := make([][]int, len(a)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(b)+1)
	}
	for i := len(a) - 1; i >= 0; i-- {
		for j := len(b) - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	type line struct {
		op   byte // ' ', '-', '+'
		text string
	}
	var ops []line
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case i < len(a) && j < len(b) && a[i] == b[j]:
			ops = append(ops, line{' ', a[i]})
			i++
			j++
		case i < len(a) && (j == len(b) || lcs[i+1][j] >= lcs[i][j+1]):
			// Removals first, as diff shows them.
			ops = append(ops, line{'-', a[i]})
			i++
		default:
			ops = append(ops, line{'+', b[j]})
			j++
		}
	}
	keep := make([]bool, len(ops))
	for k, o := range ops {
		if o.op != ' ' {
			for c := max(k-1, 0); c <= min(k+1, len(ops)-1); c++ {
				keep[c] = true
			}
		}
	}
	var s strings.Builder
	skipped := false
	for k, o := range ops {
		if !keep[k] {
			skipped = true
			continue
		}
		if skipped {
			s.WriteString("…\n")
			skipped = false
		}
		fmt.Fprintf(&s, "%c %s\n", o.op, strings.ReplaceAll(o.text, "```", "'''"))
	}
	if skipped {
		s.WriteString("…\n")
	}
	return s.String()
}

func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}
