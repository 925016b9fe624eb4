package engine_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vmconv/terraform-provider-vmconv/engine"
	"github.com/vmconv/terraform-provider-vmconv/engine/output"
	"github.com/vmconv/terraform-provider-vmconv/internal/testimg"
)

// TestMain lets this test binary act as a conversion process that the
// kill test can SIGKILL, the way a CI runner kills terraform on timeout.
func TestMain(m *testing.M) {
	if os.Getenv("VMCONV_TEST_CHILD_POOL") != "" {
		os.Exit(childUpload())
	}
	if src := os.Getenv("VMCONV_TEST_CHILD_SRC"); src != "" {
		e, err := engine.New(engine.Config{WorkDir: os.Getenv("VMCONV_TEST_CHILD_WORK")})
		if err != nil {
			os.Exit(3)
		}
		p, err := e.Plan(context.Background(), engine.Request{Source: engine.SourceSpec{Path: src}, Output: engine.OutputSpec{Path: os.Getenv("VMCONV_TEST_CHILD_OUT"), Compression: true}}, engine.PlanOptions{})
		if err != nil {
			os.Exit(4)
		}
		e.Apply(context.Background(), p, nil, engine.ApplyOptions{})
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestKilledRunLeavesNoOutputAndIsCleanedUp(t *testing.T) {
	src, out := t.TempDir(), t.TempDir()
	head := bigSource(t, src, 512*mib)
	outPath := filepath.Join(out, "big.qcow2")
	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), "VMCONV_TEST_CHILD_SRC="+head, "VMCONV_TEST_CHILD_OUT="+outPath, "VMCONV_TEST_CHILD_WORK="+t.TempDir())
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait until the conversion is writing its temporary file.
	var tmp string
	deadline := time.Now().Add(60 * time.Second)
	for tmp == "" && time.Now().Before(deadline) {
		entries, _ := os.ReadDir(out)
		for _, e := range entries {
			if strings.Contains(e.Name(), ".vmconv-tmp-") {
				if fi, err := e.Info(); err == nil && fi.Size() > 1<<20 {
					tmp = filepath.Join(out, e.Name())
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if tmp == "" {
		child.Process.Kill()
		t.Fatal("the conversion never started writing")
	}
	child.Process.Signal(syscall.SIGKILL)
	child.Wait()
	time.Sleep(300 * time.Millisecond)
	if o, _ := exec.Command("pgrep", "-f", "qemu-img convert.*"+filepath.Base(tmp)).Output(); len(o) > 0 {
		t.Fatalf("qemu-img survived its parent's death: %s", o)
	}
	if _, err := os.Stat(outPath); err == nil {
		t.Fatal("a killed run left a file at the output path")
	}
	if _, err := os.Stat(tmp); err != nil {
		t.Fatalf("expected the killed run's temporary file to remain for cleanup: %v", err)
	}
	// The next run removes the leftover and converts.
	e := newEngine(t)
	p, err := e.Plan(context.Background(), engine.Request{Source: engine.SourceSpec{Path: head}, Output: engine.OutputSpec{Path: outPath}}, engine.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Apply(context.Background(), p, nil, engine.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(tmp); err == nil {
		t.Fatal("the next run did not clean the leftover")
	}
	assertNoLeftovers(t, out)
}

// TestKilledAroundThePublishRename kills a run at the two moments around
// the rename of the output into place (held there by the engine's test
// seam, VMCONV_TEST_HOLD). Before it, the report is written and the output
// is not in place: the next run converts again. After it, the output is in
// place with its report, which a caller that never recorded the result
// (terraform, killed) recognises and adopts. Either way nothing is left
// beside the output, not even the lock file the killed run held.
func TestKilledAroundThePublishRename(t *testing.T) {
	for _, hold := range []string{"before-publish-rename", "after-publish-rename"} {
		t.Run(hold, func(t *testing.T) {
			src, out := t.TempDir(), t.TempDir()
			head := chainIn(t, src)
			outPath := filepath.Join(out, "web.qcow2")
			child := exec.Command(os.Args[0], "-test.run=^$")
			child.Env = append(os.Environ(), "VMCONV_TEST_CHILD_SRC="+head, "VMCONV_TEST_CHILD_OUT="+outPath,
				"VMCONV_TEST_CHILD_WORK="+t.TempDir(), engine.TestHoldEnv+"="+hold)
			if err := child.Start(); err != nil {
				t.Fatal(err)
			}
			// The seam holds the run at the point: wait for the file that
			// marks it (the report before the rename, the output after).
			mark := output.ReportPath(outPath)
			if hold == "after-publish-rename" {
				mark = outPath
			}
			for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				if _, err := os.Stat(mark); err == nil {
					break
				}
				if time.Now().After(deadline) {
					child.Process.Kill()
					t.Fatalf("the run never reached %s", hold)
				}
			}
			child.Process.Signal(syscall.SIGKILL)
			child.Wait()

			e := newEngine(t)
			req := engine.Request{Source: engine.SourceSpec{Path: head}, Output: engine.OutputSpec{Path: outPath, Compression: true}}
			p, err := e.Plan(context.Background(), req, engine.PlanOptions{ManagedOutput: true})
			if err != nil {
				t.Fatal(err)
			}
			rep, err := e.Adopt(p, nil)
			switch hold {
			case "before-publish-rename":
				if _, serr := os.Stat(outPath); serr == nil || rep != nil || err != nil {
					t.Fatalf("killed before the rename: output there = %v, adopted %v, %v", serr == nil, rep != nil, err)
				}
				if _, err := e.Apply(context.Background(), p, nil, engine.ApplyOptions{}); err != nil {
					t.Fatalf("the next run: %v", err)
				}
			case "after-publish-rename":
				if err != nil || rep == nil {
					t.Fatalf("the output published before the kill was not adopted: %v", err)
				}
				if got := sumFile(t, outPath); got != rep.Result.Output.SHA256 {
					t.Fatalf("the report's sha256 %s is not the output's %s", rep.Result.Output.SHA256, got)
				}
			}
			data, err := testimg.ReadQcow2(outPath)
			if err != nil {
				t.Fatal(err)
			}
			if err := testimg.NewExpected(8*mib, baseLayer, snap1, snap2).Compare(data); err != nil {
				t.Fatal(err)
			}
			assertNoLeftovers(t, out)
		})
	}
}
