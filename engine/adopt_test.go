package engine_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmconv/terraform-provider-vmconv/engine"
	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/internal/testimg"
)

// TestAdopt: an output with a report is adopted only by a plan of the very
// conversion that made it, and only while it is unchanged; every refusal
// says why and offers import only where import can work.
func TestAdopt(t *testing.T) {
	for _, tc := range []struct {
		name string
		// change alters the world or the request after the first apply.
		change func(t *testing.T, req *engine.Request, outPath string)
		want   string // "" adopts; otherwise a text of the refusal
	}{
		{"same conversion", nil, ""},
		{"overwrite differs", func(t *testing.T, req *engine.Request, _ string) { req.Output.Overwrite = true }, ""},
		{"compression differs", func(t *testing.T, req *engine.Request, _ string) { req.Output.Compression = false }, "different output format or compression"},
		{"boot test differs", func(t *testing.T, req *engine.Request, _ string) { req.BootTest.Options.MemoryMiB = 4096 }, "different boot test"},
		{"fixes differ", func(t *testing.T, req *engine.Request, _ string) { req.Fixes.Enabled = true; req.Fixes.DryRun = true }, "different fixes"},
		{"source changed", func(t *testing.T, req *engine.Request, _ string) {
			if err := testimg.QemuWrite(req.Source.Path, "vmdk", testimg.Layer{{Offset: 0, Length: 4096, Byte: 0x42}}); err != nil {
				t.Fatal(err)
			}
		}, "another source fingerprint"},
		{"output modified", func(t *testing.T, _ *engine.Request, outPath string) {
			later := time.Now().Add(time.Hour)
			os.Chtimes(outPath, later, later)
		}, "modified after vmconv wrote it"},
		{"report missing", func(t *testing.T, _ *engine.Request, outPath string) {
			os.Remove(outPath + ".vmconv.json")
		}, "cannot be imported"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, out := t.TempDir(), t.TempDir()
			e := newEngine(t)
			outPath := filepath.Join(out, "web.qcow2")
			req := engine.Request{Source: engine.SourceSpec{Path: chainIn(t, src)}, Output: engine.OutputSpec{Path: outPath, Compression: true}}
			res := convertInChild(t, req.Source.Path, outPath)
			if tc.change != nil {
				tc.change(t, &req, outPath)
			}
			p, err := e.Plan(context.Background(), req, engine.PlanOptions{ManagedOutput: true})
			if err != nil {
				t.Fatal(err)
			}
			var events []string
			rep, err := e.Adopt(p, engine.SinkFunc(func(ev engine.Event) { events = append(events, ev.Message) }))
			assertNoLeftovers(t, out)
			if tc.want == "" {
				if err != nil || rep == nil {
					t.Fatalf("not adopted: %v", err)
				}
				if rep.Result.Output.SHA256 != res.Output.SHA256 || rep.Result.Output.Stamp != res.Output.Stamp {
					t.Errorf("adopted %+v, want what Apply returned: %+v", rep.Result.Output, res.Output)
				}
				if !strings.Contains(strings.Join(events, "\n"), "adopted") {
					t.Errorf("the adoption was not reported: %q", events)
				}
				return
			}
			fe, ok := fault.As(err)
			if !ok || fe.Code != fault.OutputExists || rep != nil {
				t.Fatalf("got %v, %v; want output_exists", rep, err)
			}
			if text := fe.Msg + " " + fe.Hint; !strings.Contains(text, tc.want) {
				t.Errorf("refusal %q lacks %q", text, tc.want)
			}
			if importable := tc.name != "report missing"; importable != strings.Contains(fe.Hint, "terraform import") {
				t.Errorf("hint offers import = %v, want %v: %s", !importable, importable, fe.Hint)
			}
		})
	}
}

// convertInChild converts in a process that then exits, as the run whose
// output the tests adopt has (see TestMain), and returns what it published.
func convertInChild(t *testing.T, head, outPath string) *engine.Result {
	t.Helper()
	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), "VMCONV_TEST_CHILD_SRC="+head, "VMCONV_TEST_CHILD_OUT="+outPath, "VMCONV_TEST_CHILD_WORK="+t.TempDir())
	if out, err := child.CombinedOutput(); err != nil {
		t.Fatalf("converting in a child: %v\n%s", err, out)
	}
	rep, err := engine.ReadReport(outPath)
	if err != nil {
		t.Fatal(err)
	}
	return rep.Result
}

// TestAdoptRefusesALiveRunsOutput: the same conversion declared twice (two
// resources with one output.path) is not an interrupted apply; the second
// must not take over the output the first, still running, just wrote.
func TestAdoptRefusesALiveRunsOutput(t *testing.T) {
	src, out := t.TempDir(), t.TempDir()
	e := newEngine(t)
	req := engine.Request{Source: engine.SourceSpec{Path: chainIn(t, src)}, Output: engine.OutputSpec{Path: filepath.Join(out, "web.qcow2")}}
	if _, _, err := convert(t, e, req); err != nil {
		t.Fatal(err)
	}
	p, err := e.Plan(context.Background(), req, engine.PlanOptions{ManagedOutput: true})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := e.Adopt(p, nil)
	if fe, ok := fault.As(err); !ok || fe.Code != fault.OutputExists || rep != nil || !strings.Contains(fe.Msg, "still running") {
		t.Fatalf("got %v, %v; want output_exists naming the live run", rep, err)
	}
	assertNoLeftovers(t, out)
}

func TestAdoptNothingThere(t *testing.T) {
	src, out := t.TempDir(), t.TempDir()
	e := newEngine(t)
	p, err := e.Plan(context.Background(), engine.Request{Source: engine.SourceSpec{Path: chainIn(t, src)}, Output: engine.OutputSpec{Path: filepath.Join(out, "x.qcow2")}}, engine.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := e.Adopt(p, nil); rep != nil || err != nil {
		t.Fatalf("got %v, %v; want nothing", rep, err)
	}
	assertNoLeftovers(t, out)
}
