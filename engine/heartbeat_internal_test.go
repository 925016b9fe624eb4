package engine

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmconv/terraform-provider-vmconv/engine/output"
)

// The boot test's heartbeat names the elapsed time and the console's last
// words, cleaned of escape sequences; stages with their own byte counts
// get none.
func TestHeartbeat(t *testing.T) {
	old := heartbeatInterval
	heartbeatInterval = 20 * time.Millisecond
	defer func() { heartbeatInterval = old }()
	out := filepath.Join(t.TempDir(), "web.qcow2")
	os.WriteFile(output.BootLogPath(out), []byte("GNU GRUB\r\n\x1b[0;32m  OK  \x1b[0m] Reached target \x1b[1mBasic System\x1b[0m.\r\n\r\n"), 0o644)
	var mu sync.Mutex
	var got []Event
	j := &job{plan: &Plan{Output: OutputPlan{Path: out}}, sink: SinkFunc(func(e Event) { mu.Lock(); got = append(got, e); mu.Unlock() })}
	j.plan.Request.BootTest.Options.Timeout = 10 * time.Minute
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(got) }
	// CONVERT counts its own bytes: no heartbeat, however long it runs.
	stopConvert := j.heartbeat(StageConvert)
	time.Sleep(100 * time.Millisecond)
	stopConvert()
	if n := count(); n != 0 {
		t.Fatalf("%d heartbeats for CONVERT", n)
	}
	stop := j.heartbeat(StageValidate)
	for deadline := time.Now().Add(10 * time.Second); count() < 2 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	if count() < 2 {
		t.Fatalf("%d heartbeats in 10 s at a 20 ms interval", count())
	}
	mu.Lock()
	e := got[0]
	mu.Unlock()
	if e.Kind != EventProgress || e.Stage != StageValidate || !strings.HasPrefix(e.Message, "boot test running for ") ||
		!strings.HasSuffix(e.Message, "(timeout 10m0s); console: OK  ] Reached target Basic System.") {
		t.Errorf("heartbeat %+v", e)
	}
	if _, ok := e.Fields["elapsed_s"].(int64); !ok {
		t.Errorf("elapsed_s is %T", e.Fields["elapsed_s"])
	}
	n := count()
	time.Sleep(50 * time.Millisecond)
	if count() != n {
		t.Error("heartbeats after stop")
	}
}
