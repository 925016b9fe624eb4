package engine

import "github.com/vmconv/terraform-provider-vmconv/engine/internal/run"

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
