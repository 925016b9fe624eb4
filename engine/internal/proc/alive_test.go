package proc

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestAlive(t *testing.T) {
	child := exec.Command("true")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	pid := child.Process.Pid
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if i := strings.LastIndexByte(string(b), ')'); i > 0 && i+2 < len(b) && b[i+2] == 'Z' {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d never became a zombie: %q", pid, b)
		}
	}
	if Alive(pid) {
		t.Errorf("zombie %d counted as alive", pid)
	}
	child.Wait()
	if Alive(pid) {
		t.Errorf("reaped %d counted as alive", pid)
	}
	if !Alive(os.Getpid()) {
		t.Errorf("this process counted as gone")
	}
}
