package span

import (
	"math"
	"testing"
)

func TestArithmetic(t *testing.T) {
	cases := []struct {
		name   string
		got    func() (int64, bool)
		want   int64
		wantOK bool
	}{
		{"mul small", func() (int64, bool) { return Mul(512, 1<<20) }, 512 << 20, true},
		{"mul at the bound", func() (int64, bool) { return Mul(1<<25, 1<<25) }, MaxFile, true},
		{"mul past the bound", func() (int64, bool) { return Mul(1<<25+1, 1<<25) }, 0, false},
		{"mul wrapping uint64", func() (int64, bool) { return Mul(1<<40, 1<<40) }, 0, false},
		{"mul negative", func() (int64, bool) { return Mul(-1, 512) }, 0, false},
		{"end", func() (int64, bool) { return End(100, 28) }, 128, true},
		{"end past the bound", func() (int64, bool) { return End(MaxFile, 1) }, 0, false},
		{"end of max int64", func() (int64, bool) { return End(math.MaxInt64, math.MaxInt64) }, 0, false},
		{"int of 2^63", func() (int64, bool) { return Int(1 << 63) }, 0, false},
		{"int of a sector count", func() (int64, bool) { return Int(1 << 37) }, 1 << 37, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v, ok := c.got()
			if ok != c.wantOK || (ok && v != c.want) {
				t.Errorf("got %d, %v; want %d, %v", v, ok, c.want, c.wantOK)
			}
		})
	}
	for _, c := range []struct {
		off, n, size, end int64
		ok                bool
	}{
		{0, 512, 512, 512, true},
		{1, 512, 512, 513, false},
		{-512, 512, 4096, MaxFile, false},
		{math.MaxInt64 - 10, 20, 4096, MaxFile, false},
	} {
		if end, ok := Within(c.off, c.n, c.size); end != c.end || ok != c.ok {
			t.Errorf("Within(%d, %d, %d) = %d, %v; want %d, %v", c.off, c.n, c.size, end, ok, c.end, c.ok)
		}
	}
}

func TestMap(t *testing.T) {
	m := NewMap(4096, 512, 1<<20)
	if c := m.Claim("the header", Meta, 512, 8192); c != nil {
		t.Fatalf("first claim conflicts: %+v", c)
	}
	cases := []struct {
		name     string
		use      Use
		off, n   int64
		conflict bool
		with     string
	}{
		{"data after the header", Data, 512 + 8192, 4096, false, ""},
		{"data on the header", Data, 512 + 4096, 4096, true, "the header"},
		{"data on data", Data, 512 + 8192, 4096, true, "data"},
		{"packed beside packed", Packed, 512 + 3*4096, 100, false, ""},
		{"packed sharing a unit with packed", Packed, 512 + 3*4096 + 200, 100, false, ""},
		{"data on packed", Data, 512 + 3*4096, 4096, true, "packed data"},
		{"unit before the base", Data, 0, 100, false, ""},
		{"far away", Data, 1 << 40, 4096, false, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := m.Claim("", c.use, c.off, c.n)
			if (got != nil) != c.conflict || (got != nil && got.With != c.with) {
				t.Errorf("Claim = %+v, want conflict %v with %q", got, c.conflict, c.with)
			}
		})
	}
	if q := m.Query(512+8192, 1); q == nil || q.With != "data" {
		t.Errorf("Query = %+v", q)
	}
	// Pages are bounded: a map of one page stops recording further pages.
	small := NewMap(512, 0, 1)
	small.Claim("", Data, 0, 512)
	small.Claim("", Data, 1<<40, 512)
	if !small.Full() || small.Claim("", Data, 1<<40, 512) != nil {
		t.Error("a full map should stop recording and report it")
	}
}
