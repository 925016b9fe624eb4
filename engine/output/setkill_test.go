package output

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The kill tests run this test binary again as a process that writes sets
// (TestSetKillChild, told what to do by the environment) and SIGKILL it,
// as a CI runner kills terraform on timeout: nothing in the process gets
// to clean up.

const (
	bigMember   = 48 << 20 // the disk image of the set in the held kills
	smallMember = 64 << 10 // in the loop, so that many sets are published
)

// TestSetKillChild is the child process; it does nothing in a normal run.
// Modes: "write" stops half way through the big member; "commit" writes a
// whole set and commits it (held at VMCONV_TEST_HOLD's point, if any);
// "loop" publishes one generation after another until killed.
func TestSetKillChild(t *testing.T) {
	mode := os.Getenv("VMCONV_SET_CHILD")
	if mode == "" {
		t.Skip("the kill tests' child process")
	}
	dir := os.Getenv("VMCONV_SET_DIR")
	gen, _ := strconv.Atoi(os.Getenv("VMCONV_SET_GEN"))
	if os.Getenv("VMCONV_SET_NO_EXCHANGE") != "" {
		withoutExchange(t)
	}
	// A hold lasts until the kill. (A context that can never end would
	// make the runtime call the held process deadlocked and exit it.)
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	opts := SetOptions{Replace: true}
	switch mode {
	case "write":
		s, err := BeginSet(dir, opts)
		if err != nil {
			t.Fatal(err)
		}
		p, _ := s.Path("disk0.img")
		if err := os.WriteFile(p, member(gen, bigMember)[:bigMember/2], 0o644); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Hour)
	case "commit":
		if err := writeSet(ctx, dir, gen, bigMember, opts); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Hour) // a kill after the commit must find the new set
	case "loop":
		for ; ; gen++ {
			if err := writeSet(ctx, dir, gen, smallMember, opts); err != nil {
				t.Fatal(err)
			}
		}
	}
}

type child struct {
	cmd  *exec.Cmd
	out  bytes.Buffer
	done chan struct{}
}

func startChild(t *testing.T, mode, dir string, gen int, noExchange bool, hold string) *child {
	t.Helper()
	c := &child{cmd: exec.Command(os.Args[0], "-test.run=^TestSetKillChild$", "-test.count=1"), done: make(chan struct{})}
	c.cmd.Env = append(os.Environ(), "VMCONV_SET_CHILD="+mode, "VMCONV_SET_DIR="+dir, "VMCONV_SET_GEN="+strconv.Itoa(gen),
		testHoldEnv+"="+hold, "VMCONV_SET_NO_EXCHANGE=")
	if noExchange {
		c.cmd.Env = append(c.cmd.Env, "VMCONV_SET_NO_EXCHANGE=1")
	}
	c.cmd.Stdout, c.cmd.Stderr = &c.out, &c.out
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.cmd.Wait(); close(c.done) }()
	t.Cleanup(c.kill)
	return c
}

func (c *child) kill() {
	c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.done
}

// killAlive kills the child, which must still be running: a child that
// died on its own did not test what its kill was meant to.
func (c *child) killAlive(t *testing.T) {
	t.Helper()
	select {
	case <-c.done:
		t.Fatalf("the child exited before it was killed: %s", c.out.String())
	default:
	}
	c.kill()
	if ws, ok := c.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("the child ended with %v, not by the kill: %s", c.cmd.ProcessState, c.out.String())
	}
}

// waitFor polls until cond holds; the child must not exit meanwhile.
func (c *child) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Minute); !cond(); time.Sleep(2 * time.Millisecond) {
		select {
		case <-c.done:
			t.Fatalf("the child exited before %s: %s", what, c.out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the child never reached %s", what)
		}
	}
}

// leftover finds an entry beside dir whose name starts with ".<base><infix>".
func leftover(dir, infix string, cond func(p string) bool) bool {
	names, _ := entryNames(filepath.Dir(dir))
	for _, n := range names {
		p := filepath.Join(filepath.Dir(dir), n)
		if strings.HasPrefix(n, "."+filepath.Base(dir)+infix) && cond(p) {
			return true
		}
	}
	return false
}

// TestSetKilled kills a run at fixed moments: while it writes the big
// member, and at the test seam's points around the publishing renames,
// with and without RENAME_EXCHANGE. Right after the kill dir holds the
// complete previous set or the complete new one (or, in the fallback's
// window, nothing, with the previous set parked); after the next BeginSet
// it holds the set it should, and nothing else is left beside it.
func TestSetKilled(t *testing.T) {
	inTemp := func(name string) func(string) bool {
		return func(p string) bool {
			fi, err := os.Stat(filepath.Join(p, name))
			return err == nil && (name != "disk0.img" || fi.Size() >= bigMember/2)
		}
	}
	for _, tc := range []struct {
		name       string
		old        bool // a previous set (generation 1) is there
		noExchange bool
		mode, hold string
		reached    func(dir string) bool // the child is at the moment
		now, after int                   // generation at dir right after the kill, after recovery (0: none)
	}{
		{name: "writing, first set", mode: "write", reached: func(d string) bool { return leftover(d, tmpInfix, inTemp("disk0.img")) }},
		{name: "writing, previous set", old: true, mode: "write", now: 1, after: 1,
			reached: func(d string) bool { return leftover(d, tmpInfix, inTemp("disk0.img")) }},
		{name: "before publish, first set", mode: "commit", hold: "set-before-publish",
			reached: func(d string) bool { return leftover(d, tmpInfix, inTemp(SetManifest)) }},
		{name: "before publish", old: true, mode: "commit", hold: "set-before-publish", now: 1, after: 1,
			reached: func(d string) bool { return leftover(d, tmpInfix, inTemp(SetManifest)) }},
		{name: "after publish, first set", mode: "commit", now: 2, after: 2,
			reached: func(d string) bool { _, err := os.Stat(filepath.Join(d, SetManifest)); return err == nil }},
		{name: "after publish", old: true, mode: "commit", hold: "set-after-publish", now: 2, after: 2, reached: isGen(2)},
		{name: "no exchange, before publish", old: true, noExchange: true, mode: "commit", hold: "set-before-publish", now: 1, after: 1,
			reached: func(d string) bool { return leftover(d, tmpInfix, inTemp(SetManifest)) }},
		{name: "no exchange, between the renames", old: true, noExchange: true, mode: "commit", hold: "set-after-park", now: 0, after: 1,
			reached: func(d string) bool { return leftover(d, parkInfix, func(string) bool { return true }) }},
		{name: "no exchange, after publish", old: true, noExchange: true, mode: "commit", hold: "set-after-publish", now: 2, after: 2,
			reached: isGen(2)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			dir := filepath.Join(parent, "vm")
			if tc.old {
				if err := writeSet(context.Background(), dir, 1, bigMember, SetOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			c := startChild(t, tc.mode, dir, 2, tc.noExchange, tc.hold)
			c.waitFor(t, tc.name, func() bool { return tc.reached(dir) })
			c.killAlive(t)
			expectGen(t, dir, tc.now)
			if tc.mode != "commit" || tc.hold != "" { // a killed run leaves something for the sweep
				if names, _ := entryNames(parent); len(names) < 2 {
					t.Fatalf("nothing left beside the set to sweep (%v): the test proves nothing", names)
				}
			}
			s, err := BeginSet(dir, SetOptions{Replace: true})
			if err != nil {
				t.Fatal(err)
			}
			s.Abort()
			expectGen(t, dir, tc.after)
			if tc.after == 0 {
				assertOnly(t, parent)
			} else {
				assertOnly(t, parent, "vm")
			}
		})
	}
}

func isGen(gen int) func(dir string) bool {
	return func(dir string) bool { g, err := setGen(dir, bigMember); return err == nil && g == gen }
}

func expectGen(t *testing.T, dir string, gen int) {
	t.Helper()
	if gen == 0 {
		if _, err := os.Lstat(dir); err == nil {
			t.Fatalf("something is at %s", dir)
		}
		return
	}
	mustGen(t, dir, bigMember, gen)
}

// TestSetKilledAtRandomMoments kills a process that publishes set after
// set at random moments, and watches dir all along from this process. With
// the exchange some complete set is at dir at every instant, and the one
// there after a kill is the newest published or the one after it; without
// it the next BeginSet restores that.
func TestSetKilledAtRandomMoments(t *testing.T) {
	for _, noExchange := range []bool{false, true} {
		t.Run("no exchange "+strconv.FormatBool(noExchange), func(t *testing.T) {
			parent := t.TempDir()
			dir := filepath.Join(parent, "vm")
			if err := writeSet(context.Background(), dir, 0, smallMember, SetOptions{}); err != nil {
				t.Fatal(err)
			}
			var stop, looks, misses atomic.Int64
			watched := make(chan struct{})
			go func() {
				defer close(watched)
				for stop.Load() == 0 {
					if _, err := os.Lstat(filepath.Join(dir, SetManifest)); err != nil {
						misses.Add(1)
					}
					looks.Add(1)
				}
			}()
			last := 0
			for round := 1; round <= 25; round++ {
				first := round * 1000000
				c := startChild(t, "loop", dir, first, noExchange, "")
				c.waitFor(t, "its first set", func() bool { g, _ := setGen(dir, smallMember); return g >= first })
				time.Sleep(time.Duration(rand.IntN(20000)) * time.Microsecond)
				c.killAlive(t)
				if !noExchange {
					if g, err := setGen(dir, smallMember); err != nil || g < last {
						t.Fatalf("round %d: right after the kill: generation %d (last seen %d), %v", round, g, last, err)
					}
				}
				s, err := BeginSet(dir, SetOptions{Replace: true})
				if err != nil {
					t.Fatal(err)
				}
				s.Abort()
				g, err := setGen(dir, smallMember)
				if err != nil || g < first {
					t.Fatalf("round %d: after recovery: generation %d (this round's first %d), %v", round, g, first, err)
				}
				last = g
				assertOnly(t, parent, "vm")
			}
			stop.Store(1)
			<-watched
			t.Logf("%d looks at the folder, %d found no set", looks.Load(), misses.Load())
			if !noExchange && misses.Load() > 0 {
				t.Fatalf("no set at %s in %d of %d looks", dir, misses.Load(), looks.Load())
			}
		})
	}
}
