package engine

import (
	"fmt"
	"time"

	"github.com/vmconv/terraform-provider-vmconv/engine/boottest"
	"github.com/vmconv/terraform-provider-vmconv/engine/output"
)

// heartbeatInterval spaces the reports of stages that count no bytes:
// inspection and fixes in the appliance, and the boot test.
var heartbeatInterval = 30 * time.Second

// heartbeat reports a stage that has no byte count of its own while it
// runs, so a long apply is never silent: how long it has run and, for the
// boot test, the guest console's last line. The returned stop ends it.
func (j *job) heartbeat(stage StageName) (stop func()) {
	switch stage {
	case StageInspect, StageFix, StageValidate:
	default:
		return func() {}
	}
	done, exited := make(chan struct{}), make(chan struct{})
	start := time.Now()
	go func() {
		defer close(exited)
		t := time.NewTicker(heartbeatInterval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				el := time.Since(start).Round(time.Second)
				msg := fmt.Sprintf("%s running for %s", stage, el)
				fields := map[string]any{"elapsed_s": int64(el.Seconds())}
				if stage == StageValidate {
					msg = fmt.Sprintf("boot test running for %s", el)
					if to := j.plan.Request.BootTest.Options.Timeout; to > 0 {
						msg += fmt.Sprintf(" (timeout %s)", to)
					}
					if line := lastLine(output.BootLogPath(j.plan.Output.Path)); line != "" {
						msg += "; console: " + line
					}
				}
				j.sink.Event(Event{Time: time.Now(), Kind: EventProgress, Stage: stage, Message: msg, Fields: fields})
			}
		}
	}()
	// No report after the stage ends: stop waits for the reporter.
	return func() { close(done); <-exited }
}

// lastLine is the console's latest words, cut to 160 bytes.
func lastLine(path string) string {
	l := boottest.ConsoleLines(path, 1)
	if len(l) == 0 {
		return ""
	}
	return l[0][:min(len(l[0]), 160)]
}
