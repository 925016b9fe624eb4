// Package progress turns a long transfer's running count into reports a
// person can follow: how much of how much, the rate, and an ETA, at most
// once per interval, so that logs at INFO stay readable.
package progress

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/vmconv/terraform-provider-vmconv/engine/internal/room"
)

// DefaultInterval spaces reports: often enough to see a transfer move,
// rarely enough that an hour-long apply logs a few hundred lines.
const DefaultInterval = 10 * time.Second

// Report is one reading. Total is 0 when the length is unknown; Rate is
// bytes per second of this run (a resumed transfer's earlier bytes do not
// count), ETA 0 when it cannot be told.
type Report struct {
	Done, Total int64
	Rate        float64
	ETA         time.Duration
	Elapsed     time.Duration
}

// Meter rate-limits reports of one transfer. Its zero value reports every
// DefaultInterval; it is safe for concurrent use.
type Meter struct {
	Interval time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	mu          sync.Mutex
	started     bool
	start, last time.Time
	base        int64
	finished    bool
}

// Update records done of total and returns a report when one is due: the
// first reading, then one per interval, and the last (done == total).
func (m *Meter) Update(done, total int64) (Report, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now
	if m.Now != nil {
		now = m.Now
	}
	t := now()
	iv := m.Interval
	if iv <= 0 {
		iv = DefaultInterval
	}
	final := total > 0 && done >= total
	switch {
	case !m.started:
		m.started, m.start, m.base = true, t, done
	case m.finished:
		return Report{}, false
	case !final && t.Sub(m.last) < iv:
		return Report{}, false
	}
	m.last, m.finished = t, final
	r := Report{Done: done, Total: total, Elapsed: t.Sub(m.start)}
	if s := r.Elapsed.Seconds(); s > 0 {
		r.Rate = float64(done-m.base) / s
	}
	if r.Rate > 0 && total > done {
		r.ETA = time.Duration(float64(total-done) / r.Rate * float64(time.Second)).Round(time.Second)
	}
	return r, true
}

// Percent is done as a share of total, 0 when the total is unknown.
func (r Report) Percent() float64 {
	if r.Total <= 0 {
		return 0
	}
	return 100 * float64(r.Done) / float64(r.Total)
}

// String reads "1.2 GiB of 4.0 GiB (30%), 85.3 MiB/s, ETA 40s".
func (r Report) String() string {
	s := room.Human(r.Done)
	if r.Total > 0 {
		s += fmt.Sprintf(" of %s (%.0f%%)", room.Human(r.Total), r.Percent())
	}
	if r.Rate > 0 {
		s += ", " + room.Human(int64(r.Rate)) + "/s"
	}
	if r.ETA > 0 {
		s += ", ETA " + r.ETA.String()
	}
	return s
}

// Fields are the report as structured log fields: integers stay integers.
func (r Report) Fields() map[string]any {
	f := map[string]any{"done_bytes": r.Done, "elapsed_s": int64(r.Elapsed.Seconds()), "rate_bytes_per_s": int64(r.Rate)}
	if r.Total > 0 {
		f["total_bytes"], f["percent"] = r.Total, int64(r.Percent())
	}
	if r.ETA > 0 {
		f["eta_s"] = int64(r.ETA.Seconds())
	}
	return f
}

// Reader counts what is read through it, from done, and hands each due
// report to Report.
type Reader struct {
	R           io.Reader
	Done, Total int64
	Meter       *Meter
	Report      func(Report)
}

func (r *Reader) Read(p []byte) (int, error) {
	n, err := r.R.Read(p)
	r.Done += int64(n)
	if rep, ok := r.Meter.Update(r.Done, r.Total); ok && r.Report != nil {
		r.Report(rep)
	}
	return n, err
}
