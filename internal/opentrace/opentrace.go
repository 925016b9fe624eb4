// Package opentrace is the test kit that watches which files a tool opens.
// It wraps a binary (qemu-img, qemu-system-x86_64) in strace, so a test can
// hand the wrapper to the engine in place of the tool and then read back
// every file the real tool, its threads and its children tried to open.
// Tests use it to prove that qemu opens only the files vmconv validated,
// whatever a hostile disk names.
package opentrace

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Tracer is a wrapper script and the log it appends to.
type Tracer struct {
	// Path is the wrapper: use it wherever the tool's path goes.
	Path string
	log  string
}

// Wrap writes a wrapper for the binary named bin (looked up on PATH) that
// runs it under strace, following threads and children, recording every
// open, openat and openat2 with its result.
func Wrap(t testing.TB, bin string) *Tracer {
	t.Helper()
	real, err := exec.LookPath(bin)
	if err != nil {
		t.Fatalf("%s is required: %v", bin, err)
	}
	strace, err := exec.LookPath("strace")
	if err != nil {
		t.Fatalf("strace is required (run tools/setup): %v", err)
	}
	dir := t.TempDir()
	tr := &Tracer{Path: filepath.Join(dir, filepath.Base(bin)), log: filepath.Join(dir, "opens")}
	// Each run logs to its own file (-o name.PID), and records its working
	// folder first so relative names can be resolved.
	script := fmt.Sprintf("#!/bin/sh\nlog=%q.$$\npwd > \"$log.cwd\"\nexec %q -f -qq --seccomp-bpf -e trace=open,openat,openat2 -o \"$log\" %q \"$@\"\n",
		tr.log, strace, real)
	if err := os.WriteFile(tr.Path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return tr
}

// Open is one traced open call.
type Open struct {
	Path string // absolute, exactly as the tool named it (".." kept)
	OK   bool   // the call returned a descriptor
}

var openLine = regexp.MustCompile(`open(?:at2?)?\((?:[A-Z_]+|\d+), "((?:[^"\\]|\\.)*)"(?:,.*)?\)\s+=\s+(-?\d+)|open\("((?:[^"\\]|\\.)*)".*\)\s+=\s+(-?\d+)`)

// Opens returns every open call of every run so far.
func (tr *Tracer) Opens(t testing.TB) []Open {
	t.Helper()
	logs, _ := filepath.Glob(tr.log + ".*")
	var out []Open
	for _, l := range logs {
		if strings.HasSuffix(l, ".cwd") {
			continue
		}
		cwd := "/"
		if b, err := os.ReadFile(l + ".cwd"); err == nil {
			cwd = strings.TrimSpace(string(b))
		}
		f, err := os.Open(l)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			m := openLine.FindStringSubmatch(sc.Text())
			if m == nil {
				continue
			}
			p, rc := m[1], m[2]
			if p == "" {
				p, rc = m[3], m[4]
			}
			p = unescape(p)
			if !filepath.IsAbs(p) {
				p = cwd + "/" + p // not Join: Join would clean ".." textually
			}
			out = append(out, Open{Path: p, OK: !strings.HasPrefix(rc, "-")})
		}
		f.Close()
	}
	return out
}

// Runs is how many times the wrapper ran.
func (tr *Tracer) Runs() int {
	logs, _ := filepath.Glob(tr.log + ".*.cwd")
	return len(logs)
}

func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
			switch s[i] {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			default:
				b.WriteByte(s[i])
			}
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Under lists the opens (tried or done) of paths inside dir, judged both
// by the name and by where the kernel resolves it (symlinks, then "..").
func Under(opens []Open, dir string) []Open {
	var out []Open
	for _, o := range opens {
		if inside(filepath.Clean(o.Path), dir) || inside(resolve(o.Path), dir) {
			out = append(out, o)
		}
	}
	return out
}

func resolve(p string) string {
	// EvalSymlinks resolves component by component, following a link
	// before applying the ".." after it, as the kernel does.
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	return p
}

func inside(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}
