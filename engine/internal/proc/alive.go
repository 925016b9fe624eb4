// Package proc tells whether the process that left something behind (a
// scratch folder, a temporary output) still runs.
package proc

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"syscall"
)

// Alive tells whether pid still runs. A zombie does not: it has exited and
// waits only to be reaped, which an init that reaps late (PID 1 of a
// container or a CI sandbox, for a provider whose terraform was killed)
// may take seconds to do, and what it left is as stale as a reaped
// process's.
func Alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	if err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true // no procfs: trust kill(2)
	}
	// The state follows the command, which may itself hold ") ".
	if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) {
		return b[i+2] != 'Z' && b[i+2] != 'X'
	}
	return true
}
