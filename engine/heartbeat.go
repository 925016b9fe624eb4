package engine

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/vmconv/terraform-provider-vmconv/engine/output"
)

var ansiSeq = regexp.MustCompile("\x1b\\[[0-9;?]*[A-Za-z]")

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
	done := make(chan struct{})
	start := time.Now()
	go func() {
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
	return func() { close(done) }
}

// lastLine is the last non-empty line of a file's last 4 KiB, without
// control characters, cut to 160 bytes: a console's latest words.
func lastLine(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	buf := make([]byte, 4096)
	fi, err := f.Stat()
	if err != nil {
		return ""
	}
	off := max(fi.Size()-int64(len(buf)), 0)
	n, _ := f.ReadAt(buf, off)
	lines := bytes.Split(ansiSeq.ReplaceAll(buf[:n], nil), []byte("\n"))
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.Map(func(r rune) rune {
			if r < 0x20 || r == 0x7f {
				return -1
			}
			return r
		}, string(lines[i]))
		if l = strings.TrimSpace(l); l != "" {
			if len(l) > 160 {
				l = l[:160]
			}
			return l
		}
	}
	return ""
}
