package progress

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestMeterSpacesReportsAndMeasuresThisRun(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	m := &Meter{Interval: 10 * time.Second, Now: c.now}
	// A resumed transfer: 100 MiB were there before this run.
	r, ok := m.Update(100<<20, 1100<<20)
	if !ok || r.Rate != 0 || r.ETA != 0 {
		t.Fatalf("first reading: %+v %v", r, ok)
	}
	c.t = c.t.Add(5 * time.Second)
	if _, ok := m.Update(150<<20, 1100<<20); ok {
		t.Fatal("a report 5 s after the last one, with a 10 s interval")
	}
	c.t = c.t.Add(5 * time.Second)
	r, ok = m.Update(200<<20, 1100<<20)
	if !ok || r.Rate != 10<<20 || r.ETA != 90*time.Second || r.Elapsed != 10*time.Second {
		t.Fatalf("after 10 s: %+v %v", r, ok)
	}
	if got := r.String(); got != "200.0 MiB of 1.1 GiB (18%), 10.0 MiB/s, ETA 1m30s" {
		t.Errorf("String() = %q", got)
	}
	f := r.Fields()
	if f["done_bytes"] != int64(200<<20) || f["total_bytes"] != int64(1100<<20) || f["rate_bytes_per_s"] != int64(10<<20) || f["eta_s"] != int64(90) || f["percent"] != int64(18) {
		t.Errorf("Fields() = %v", f)
	}
	c.t = c.t.Add(time.Second)
	if r, ok = m.Update(1100<<20, 1100<<20); !ok || r.ETA != 0 {
		t.Fatalf("the last reading is always reported: %+v %v", r, ok)
	}
	c.t = c.t.Add(time.Minute)
	if _, ok := m.Update(1100<<20, 1100<<20); ok {
		t.Fatal("reported again after the end")
	}
}

func TestReaderCountsFromWhereItResumed(t *testing.T) {
	var got []Report
	r := &Reader{R: strings.NewReader(strings.Repeat("x", 4096)), Done: 1000, Total: 5096, Meter: &Meter{}, Report: func(p Report) { got = append(got, p) }}
	var out bytes.Buffer
	if _, err := io.Copy(&out, r); err != nil || out.Len() != 4096 {
		t.Fatal(err)
	}
	if len(got) != 2 || got[1].Done != 5096 || got[1].Total != 5096 {
		t.Fatalf("reports %+v: want the first read's and the last one", got)
	}
}
