package acctest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// Run is a terraform process started in the background, for tests that
// kill it (or its provider) mid-apply.
type Run struct {
	Cmd  *exec.Cmd
	out  lockedBuffer
	done chan struct{}
	err  error
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Start starts terraform with args and returns at once.
func (c *CLI) Start(args ...string) *Run {
	c.t.Helper()
	tf := os.Getenv("TF_ACC_TERRAFORM_PATH")
	if tf == "" {
		tf = "terraform"
	}
	r := &Run{done: make(chan struct{})}
	r.Cmd = exec.Command(tf, append([]string{"-chdir=" + c.Dir}, args...)...)
	r.Cmd.Env = c.Env
	r.Cmd.Stdout, r.Cmd.Stderr = &r.out, &r.out
	if err := r.Cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	go func() {
		r.err = r.Cmd.Wait()
		close(r.done)
	}()
	c.t.Cleanup(func() {
		r.Cmd.Process.Kill()
		<-r.done
	})
	return r
}

// Output is what terraform printed so far.
func (r *Run) Output() string { return r.out.String() }

// Exited reports whether terraform has exited.
func (r *Run) Exited() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// Wait waits for terraform to exit and returns its error.
func (r *Run) Wait() error {
	<-r.done
	return r.err
}

// Process is one entry of /proc.
type Process struct {
	Pid, PPid int
	Comm      string
	Cmdline   []string
}

// Processes lists the processes running now (zombies excluded).
func Processes() []Process {
	entries, _ := os.ReadDir("/proc")
	var ps []Process
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses.
		s := string(stat)
		open, shut := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || shut < open {
			continue
		}
		f := strings.Fields(s[shut+1:])
		if len(f) < 2 || f[0] == "Z" {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		cmd, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		ps = append(ps, Process{Pid: pid, PPid: ppid, Comm: s[open+1 : shut], Cmdline: strings.Split(strings.TrimRight(string(cmd), "\x00"), "\x00")})
	}
	return ps
}

// Descendants lists the live processes below pid.
func Descendants(pid int) []Process {
	ps := Processes()
	below := map[int]bool{pid: true}
	var out []Process
	for grew := true; grew; {
		grew = false
		for _, p := range ps {
			if below[p.PPid] && !below[p.Pid] {
				below[p.Pid] = true
				out = append(out, p)
				grew = true
			}
		}
	}
	return out
}

// Mentioning lists the live processes whose command line contains s (a
// test's private folder): what a killed run may have left running.
func Mentioning(s string) []Process {
	var out []Process
	for _, p := range Processes() {
		if p.Pid != os.Getpid() && strings.Contains(strings.Join(p.Cmdline, " "), s) {
			out = append(out, p)
		}
	}
	return out
}

// Kill sends SIGKILL to one process.
func Kill(t *testing.T, pid int) {
	t.Helper()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill %d: %v", pid, err)
	}
}
