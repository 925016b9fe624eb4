package engine

import "time"

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
