// Package run starts external tools for the engine. Every command runs in
// its own process group and dies with its context: on cancellation the
// group gets SIGTERM, then SIGKILL after a grace period, so a Ctrl-C never
// leaves a qemu-img writing behind us. Output is captured for errors, and
// progress lines (qemu-img separates them with \r) are handed to a callback.
package run

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Grace is how long a cancelled command has to exit after SIGTERM.
var Grace = 5 * time.Second

// Cmd describes one invocation. Secrets must never be in Args: pass them
// through Env or ExtraFiles.
type Cmd struct {
	Name  string
	Args  []string
	Env   []string // appended to the engine's environment
	Dir   string
	Stdin io.Reader
	// Lines, if set, receives stdout split on \n and \r as it arrives.
	Lines func(line string)
}

// String renders the whole command line, for logs.
func (c Cmd) String() string {
	return strings.TrimSpace(c.Name + " " + strings.Join(c.Args, " "))
}

// Short names the command for messages a user reads: the tool and its
// subcommand ("qemu-img convert"). The full argument list (temporary
// paths, driver options) would bury what went wrong.
func (c Cmd) Short() string {
	s := filepath.Base(c.Name)
	if len(c.Args) > 0 && subcommand.MatchString(c.Args[0]) {
		s += " " + c.Args[0]
	}
	return s
}

var subcommand = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)

// Error is a command that failed, with what it printed.
type Error struct {
	Cmd      string   // Short: the tool and its subcommand
	Argv     []string // the whole command line, for logs and debugging
	ExitCode int
	Stderr   string
	Err      error
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("%s: %v", e.Cmd, e.Err)
	if s := strings.TrimSpace(e.Stderr); s != "" {
		msg += ": " + lastLines(s, 5)
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// registry is a set of callbacks that can be removed again.
type registry[F any] struct {
	mu  sync.Mutex
	fns []*F
}

func (r *registry[F]) add(f F) func() {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := &f
	r.fns = append(r.fns, p)
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		for i, q := range r.fns {
			if q == p {
				r.fns = append(r.fns[:i], r.fns[i+1:]...)
				return
			}
		}
	}
}

func (r *registry[F]) each(call func(F)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, f := range r.fns {
		call(*f)
	}
}

func (r *registry[F]) empty() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.fns) == 0
}

var (
	starts registry[func(name string, args []string)]
	exits  registry[func(name string, maxRSSKiB int64)]
)

// Observe registers f to see every command's name and args when it starts
// (tests scan argv for secrets). It returns a function that removes it.
func Observe(f func(name string, args []string)) func() { return starts.add(f) }

// ObserveExit registers f to see each command's peak memory when it ends.
func ObserveExit(f func(name string, maxRSSKiB int64)) func() { return exits.add(f) }

func notify(name string, args []string) {
	starts.each(func(f func(string, []string)) { f(name, args) })
	auditArgv(name, args)
}

// auditArgv appends each command line to the file VMCONV_ARGV_LOG names:
// an audit trail (and what the secrets scan reads) of every tool the
// engine starts, across processes.
func auditArgv(name string, args []string) {
	p := os.Getenv("VMCONV_ARGV_LOG")
	if p == "" {
		return
	}
	b, _ := json.Marshal(append([]string{name}, args...))
	if f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600); err == nil {
		f.Write(append(b, '\n'))
		f.Close()
	}
}

func notifyExit(name string, hwmKiB int64) {
	exits.each(func(f func(string, int64)) { f(name, hwmKiB) })
}

// watchHWM samples the process's peak resident set (VmHWM) until stop is
// closed. rusage's maxrss would include the Go parent's pages from before
// exec; VmHWM starts afresh with the new program.
func watchHWM(pid int, stop <-chan struct{}) <-chan int64 {
	out := make(chan int64, 1)
	go func() {
		var peak int64
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
				for _, l := range strings.Split(string(b), "\n") {
					var v int64
					if _, err := fmt.Sscanf(l, "VmHWM: %d kB", &v); err == nil && v > peak {
						peak = v
					}
				}
			}
			select {
			case <-stop:
				out <- peak
				return
			case <-t.C:
			}
		}
	}()
	return out
}

// Run runs c to completion and returns its stdout (empty when Lines is set).
func Run(ctx context.Context, c Cmd) ([]byte, error) {
	notify(c.Name, c.Args)
	// Pdeathsig kills the tool if this process dies (say, a SIGKILLed
	// terraform), so no qemu-img outlives us writing a temporary file. The
	// signal follows the thread that started the child, so that thread is
	// held for the command's lifetime.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cmd := exec.CommandContext(ctx, c.Name, c.Args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error {
		// Signal the whole group: qemu-img and anything it started.
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	}
	cmd.WaitDelay = Grace
	cmd.Dir = c.Dir
	if len(c.Env) > 0 {
		cmd.Env = append(cmd.Environ(), c.Env...)
	}
	cmd.Stdin = c.Stdin
	var stdout, stderr bytes.Buffer
	cmd.Stderr = &limited{w: &stderr, n: 64 << 10}
	var lines *io.PipeWriter
	var done chan struct{}
	if c.Lines != nil {
		pr, pw := io.Pipe()
		lines, done = pw, make(chan struct{})
		cmd.Stdout = pw
		go func() {
			defer close(done)
			sc := bufio.NewScanner(pr)
			sc.Buffer(make([]byte, 64<<10), 1<<20)
			sc.Split(scanCRLF)
			for sc.Scan() {
				if l := strings.TrimSpace(sc.Text()); l != "" {
					c.Lines(l)
				}
			}
			io.Copy(io.Discard, pr)
		}()
	} else {
		cmd.Stdout = &stdout
	}
	err := cmd.Start()
	var hwm <-chan int64
	stopHWM := make(chan struct{})
	if err == nil && !exits.empty() {
		hwm = watchHWM(cmd.Process.Pid, stopHWM)
	}
	if err == nil {
		err = cmd.Wait()
	}
	close(stopHWM)
	if lines != nil {
		lines.Close()
		<-done
	}
	if hwm != nil {
		notifyExit(c.Name, <-hwm)
	}
	if err != nil {
		// Make sure nothing of the group survives, even if the leader exited.
		if cmd.Process != nil {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		code := -1
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		}
		return nil, &Error{Cmd: c.Short(), Argv: append([]string{c.Name}, c.Args...), ExitCode: code, Stderr: stderr.String(), Err: err}
	}
	return stdout.Bytes(), nil
}

// scanCRLF splits on \n or \r, as progress meters redraw with \r.
func scanCRLF(data []byte, atEOF bool) (int, []byte, error) {
	for i, b := range data {
		if b == '\n' || b == '\r' {
			return i + 1, data[:i], nil
		}
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}

// limited keeps the last n bytes written, so a chatty tool cannot exhaust
// memory while its final error message is kept.
type limited struct {
	w *bytes.Buffer
	n int
}

func (l *limited) Write(p []byte) (int, error) {
	l.w.Write(p)
	if over := l.w.Len() - l.n; over > 0 {
		b := l.w.Bytes()[over:]
		nb := make([]byte, len(b))
		copy(nb, b)
		l.w.Reset()
		l.w.Write(nb)
	}
	return len(p), nil
}
