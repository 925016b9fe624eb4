package run

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestLinesSplitOnCarriageReturn(t *testing.T) {
	var got []string
	_, err := Run(context.Background(), Cmd{Name: "printf", Args: []string{`a\rb\nc\r\n`}, Lines: func(l string) { got = append(got, l) }})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "a,b,c" {
		t.Fatalf("lines %q", got)
	}
}

func TestErrorCarriesStderr(t *testing.T) {
	_, err := Run(context.Background(), Cmd{Name: "sh", Args: []string{"-c", "echo boom >&2; exit 3"}})
	var re *Error
	if !errors.As(err, &re) || re.ExitCode != 3 || !strings.Contains(re.Stderr, "boom") {
		t.Fatalf("got %#v", err)
	}
}

// TestErrorNamesTheCommandNotItsArgv: a diagnostic shows "qemu-img
// convert", not the temporary paths and options of the call; the argv is
// kept for logs.
func TestErrorNamesTheCommandNotItsArgv(t *testing.T) {
	for _, tc := range []struct {
		name string
		cmd  Cmd
		want string
	}{
		{"subcommand", Cmd{Name: "/bin/sh", Args: []string{"convert", "-p", "/secret/tmp/.out.vmconv-tmp-1"}}, "sh convert"},
		{"option first", Cmd{Name: "sh", Args: []string{"-c", "echo boom >&2; exit 3 # /secret/tmp"}}, "sh"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Run(context.Background(), tc.cmd)
			var re *Error
			if !errors.As(err, &re) {
				t.Fatalf("got %v", err)
			}
			if re.Cmd != tc.want || !strings.HasPrefix(err.Error(), tc.want+": ") {
				t.Errorf("error %q names %q, want %q", err, re.Cmd, tc.want)
			}
			if strings.Contains(err.Error(), "/secret/tmp") {
				t.Errorf("error shows the argv: %q", err)
			}
			if len(re.Argv) != len(tc.cmd.Args)+1 {
				t.Errorf("argv not kept: %q", re.Argv)
			}
		})
	}
}

// TestCancelKillsTheProcessGroup starts a shell whose child ignores
// SIGTERM; cancelling must still leave nothing running.
func TestCancelKillsTheProcessGroup(t *testing.T) {
	old := Grace
	Grace = 500 * time.Millisecond
	defer func() { Grace = old }()
	marker := "vmconv-run-test-" + strings.ReplaceAll(t.Name(), "/", "-")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := Run(ctx, Cmd{Name: "bash", Args: []string{"-c", "trap '' TERM; (trap '' TERM; exec -a " + marker + " sleep 30) & wait"}})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want deadline exceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("cancel took %s", d)
	}
	time.Sleep(200 * time.Millisecond)
	if out, _ := exec.Command("pgrep", "-f", marker).Output(); len(out) > 0 {
		t.Fatalf("child survived cancellation: pid %s", out)
	}
}

func TestObserveSeesArgv(t *testing.T) {
	var seen []string
	stop := Observe(func(name string, args []string) { seen = append(seen, name+" "+strings.Join(args, " ")) })
	defer stop()
	Run(context.Background(), Cmd{Name: "true", Args: []string{"x"}})
	if len(seen) != 1 || seen[0] != "true x" {
		t.Fatalf("observed %q", seen)
	}
	_ = os.Getpid()
}
