package qemuimg

import "testing"

func TestParseProgress(t *testing.T) {
	cases := []struct {
		line string
		want float64
		ok   bool
	}{
		{"    (0.00/100%)", 0, true},
		{"(42.17/100%)", 42.17, true},
		{"    (100.00/100%)", 100, true},
		{"(101.00/100%)", 0, false},
		{"qemu-img: error while writing", 0, false},
		{"", 0, false},
		{"(x/100%)", 0, false},
	}
	for _, c := range cases {
		got, ok := ParseProgress(c.line)
		if ok != c.ok || got != c.want {
			t.Errorf("ParseProgress(%q) = %v, %v; want %v, %v", c.line, got, ok, c.want, c.ok)
		}
	}
}
