package engine

import (
	"time"

	"github.com/vmconv/terraform-provider-vmconv/engine/internal/run"
)

// EventKind classifies progress events.
type EventKind string

const (
	EventStageStarted  EventKind = "stage_started"
	EventStageFinished EventKind = "stage_finished"
	EventStageSkipped  EventKind = "stage_skipped"
	EventProgress      EventKind = "progress"
	EventInfo          EventKind = "info"
	EventWarning       EventKind = "warning"
	EventChange        EventKind = "guest_change"
)

// Event is one progress report from Apply. Fields never hold secrets.
type Event struct {
	Time    time.Time      `json:"time"`
	Kind    EventKind      `json:"kind"`
	Stage   StageName      `json:"stage,omitempty"`
	Message string         `json:"message"`
	Percent float64        `json:"percent,omitempty"`
	Fields  map[string]any `json:"fields,omitempty"`
}

// Sink receives events. Implementations must be safe for concurrent use
// and must not block for long: the pipeline waits for them.
type Sink interface {
	Event(Event)
}

// SinkFunc adapts a function to Sink.
type SinkFunc func(Event)

func (f SinkFunc) Event(e Event) { f(e) }

type nopSink struct{}

func (nopSink) Event(Event) {}

// ToolObserver sees the external commands the engine runs: their argv when
// they start and their peak memory when they end. Tests use it to scan
// argv for secrets and benchmarks to report the tools' memory.
type ToolObserver struct {
	Started func(name string, args []string)
	Exited  func(name string, maxRSSKiB int64)
}

// ObserveTools registers o for every engine in this process and returns a
// function that unregisters it.
func ObserveTools(o ToolObserver) (stop func()) {
	var stops []func()
	if o.Started != nil {
		stops = append(stops, run.Observe(o.Started))
	}
	if o.Exited != nil {
		stops = append(stops, run.ObserveExit(o.Exited))
	}
	return func() {
		for _, s := range stops {
			s()
		}
	}
}
