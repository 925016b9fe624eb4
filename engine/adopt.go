package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/engine/output"
)

// Adopt takes over an output that an Apply of this very plan already
// published: a run killed after the rename (or after Apply returned, but
// before its caller recorded the result) leaves a complete output and its
// report, and nothing else remembers them. It returns the report, whose
// Result is what that Apply returned, when
//
//   - the report's request equals p's, except output.overwrite (which
//     decides only whether a foreign file may be replaced): the same source,
//     output path, format and compression, the same fixes with the same
//     options, the same inspection root, and the same boot test settings,
//     so the output's bytes and the verification they passed are what p
//     asks for;
//   - the report's source fingerprint is p's: the source has not changed
//     since (a deferred remote source, whose content is not known yet,
//     never matches);
//   - the file at the output path still has the stamp the report recorded
//     (size, mtime, sampled content): no one has written to it since.
//
// and the process that published it is gone: the same conversion declared
// twice (two resources, or two workspaces running at once) is not taken for
// an interrupted apply while the run that made the output is still going.
// Two workspaces applied one after the other with the same settings are
// indistinguishable from an interrupted apply and its re-run.
//
// Otherwise it returns an OutputExists fault that says which of these does
// not hold, and a nil report with no error when nothing is at the path.
// It holds the output's lock meanwhile, so it never judges an output that
// another run is replacing, and removes the temporaries killed runs left.
func (e *Engine) Adopt(p *Plan, sink Sink) (*Report, error) {
	if sink == nil {
		sink = nopSink{}
	}
	path := p.Output.Path
	lock, err := output.Acquire(path)
	if err != nil {
		return nil, err
	}
	defer lock.Release()
	if removed, _ := lock.CleanStale(); len(removed) > 0 {
		sink.Event(Event{Time: time.Now(), Kind: EventInfo, Message: fmt.Sprintf("removed %d temporary file(s) left by an interrupted run", len(removed)), Fields: map[string]any{"files": removed}})
	}
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	rep, err := ReadReport(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, output.CheckFree(path, false)
		}
		return nil, fault.Wrap(fault.OutputExists, path, err, "a file exists at the output path and its vmconv report cannot be read").
			WithHint("Move or delete the output and its report, or choose another output.path.")
	}
	if rep.Plan == nil || rep.Result == nil || rep.Plan.FormatVersion != PlanFormatVersion || rep.Result.Output.SHA256 == "" {
		return nil, foreign(path, "its report is incomplete or from an incompatible version")
	}
	if rep.Publisher.running() {
		// Not an interrupted apply: a live run (this very process, perhaps)
		// wrote it for another resource with the same settings.
		return nil, fault.New(fault.OutputExists, path, "another run (process %d) published this output and is still running: two resources, or two runs, name the same output.path", rep.Publisher.Pid).
			WithHint("Give each resource its own output.path. If both are meant to describe one disk, keep one of them.")
	}
	if diff := requestDiff(rep.Plan.Request, p.Request); len(diff) > 0 {
		return nil, foreign(path, "its report records a different "+strings.Join(diff, ", "))
	}
	if p.Source.Deferred || rep.Plan.Source.Fingerprint != p.Source.Fingerprint {
		return nil, foreign(path, "it was converted from the source as it was before it changed (its report records another source fingerprint)").
			WithFact("Report's fingerprint", rep.Plan.Source.Fingerprint).WithFact("Current fingerprint", p.Source.Fingerprint)
	}
	drift, err := CheckOutput(path, rep.Result.Output.Stamp)
	if err != nil {
		return nil, fault.Wrap(fault.OutputNotWritable, path, err, "cannot read the output to compare it with its report")
	}
	if drift != DriftNone {
		return nil, foreign(path, "it was modified after vmconv wrote it (its size, modification time or sampled content no longer match its report)")
	}
	sink.Event(Event{Time: time.Now(), Kind: EventInfo, Message: "adopted the output an interrupted apply published: its report records this very conversion, and the file is unchanged since",
		Fields: map[string]any{"path": path, "sha256": rep.Result.Output.SHA256, "created": rep.Created}})
	return rep, nil
}

// foreign is the refusal of a vmconv output that this plan cannot adopt.
func foreign(path, why string) *fault.Error {
	return fault.New(fault.OutputExists, path, "a vmconv output that this resource does not manage already exists at the output path: %s", why).
		WithHint("To manage it as it was made, import it (`terraform import <resource address> %s`; its report, %s, records how) and then change the configuration. "+
			"Otherwise move or delete it with its report, choose another output.path, or set output.overwrite = true to replace it.", path, output.ReportPath(path))
}

// requestDiff names the parts of two requests that differ.
func requestDiff(a, b Request) []string {
	type outputSettings struct{ Format, Compression any }
	var diff []string
	for _, part := range []struct {
		name string
		a, b any
	}{
		{"source", a.Source, b.Source},
		{"output path", a.Output.Path, b.Output.Path},
		{"output format or compression", outputSettings{a.Output.Format, a.Output.Compression}, outputSettings{b.Output.Format, b.Output.Compression}},
		{"inspect root", a.Inspect, b.Inspect},
		{"fixes", a.Fixes, b.Fixes},
		{"boot test", a.BootTest, b.BootTest},
	} {
		// JSON is how the report stores a request: secrets (URL user info
		// and headers, credentials) are on neither side.
		ja, _ := json.Marshal(part.a)
		jb, _ := json.Marshal(part.b)
		if string(ja) != string(jb) {
			diff = append(diff, part.name)
		}
	}
	return diff
}

// Publisher identifies the process that published an output.
type Publisher struct {
	Pid int `json:"pid"`
	// Start is the process's start time in clock ticks after boot, so that
	// a later process given the same pid is not taken for it.
	Start uint64 `json:"start"`
	Boot  string `json:"boot_id"`
}

// thisProcess is the Publisher of outputs this process writes.
func thisProcess() *Publisher {
	start, _ := processStart(os.Getpid())
	return &Publisher{Pid: os.Getpid(), Start: start, Boot: bootID()}
}

// running reports whether the publisher is still running.
func (p *Publisher) running() bool {
	if p == nil || p.Boot != bootID() {
		return false
	}
	start, ok := processStart(p.Pid)
	return ok && start == p.Start
}

// processStart reads a live process's start time from /proc/<pid>/stat.
func processStart(pid int) (uint64, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	// The fields after "pid (comm)": the command may hold spaces and ")".
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 20 || f[0] == "Z" {
		return 0, false // a zombie has exited
	}
	start, err := strconv.ParseUint(f[19], 10, 64)
	return start, err == nil
}

func bootID() string {
	b, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	return strings.TrimSpace(string(b))
}
