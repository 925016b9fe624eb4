package engine_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/vmconv/terraform-provider-vmconv/engine"
	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/engine/output"
	"github.com/vmconv/terraform-provider-vmconv/internal/testimg"
)

const mib = testimg.MiB

var (
	baseLayer = testimg.BaseLayer
	snap1     = testimg.Snap1
	snap2     = testimg.Snap2
)

func newEngine(t *testing.T) *engine.Engine {
	t.Helper()
	e, err := engine.New(engine.Config{WorkDir: t.TempDir(), CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func chainIn(t *testing.T, dir string) string {
	t.Helper()
	p, err := testimg.VMDKChain(dir, "web", "monolithicSparse", 8*mib, baseLayer, snap1, snap2)
	if err != nil {
		t.Fatal(err)
	}
	return p[0]
}

func sumFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func sumDir(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.Type().IsRegular() {
			out[e.Name()] = sumFile(t, filepath.Join(dir, e.Name()))
		}
	}
	return out
}

func assertNoLeftovers(t *testing.T, dir string) {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".vmconv-tmp-") || strings.HasPrefix(e.Name(), ".") && strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary file left behind: %s", e.Name())
		}
		if strings.HasSuffix(e.Name(), ".vmconv.lock") {
			t.Errorf("lock file left behind: %s", e.Name())
		}
	}
}

func convert(t *testing.T, e *engine.Engine, req engine.Request) (*engine.Plan, *engine.Result, error) {
	t.Helper()
	p, err := e.Plan(context.Background(), req, engine.PlanOptions{})
	if err != nil {
		return nil, nil, err
	}
	r, err := e.Apply(context.Background(), p, nil, engine.ApplyOptions{})
	return p, r, err
}

func TestApplyEachOutputFormat(t *testing.T) {
	want := testimg.NewExpected(8*mib, baseLayer, snap1, snap2)
	for _, tc := range []struct {
		format   string
		compress bool
		read     func(path string) ([]byte, error)
	}{
		{"raw", false, os.ReadFile},
		{"qcow2", false, testimg.ReadQcow2},
		{"qcow2", true, testimg.ReadQcow2},
		{"vdi", false, testimg.ReadVDI},
	} {
		name := tc.format
		if tc.compress {
			name += "-compressed"
		}
		t.Run(name, func(t *testing.T) {
			src, out := t.TempDir(), t.TempDir()
			head := chainIn(t, src)
			before := sumDir(t, src)
			e := newEngine(t)
			outPath := filepath.Join(out, "web."+tc.format)
			p, r, err := convert(t, e, engine.Request{
				Source: engine.SourceSpec{Path: head},
				Output: engine.OutputSpec{Path: outPath, Format: tc.format, Compression: tc.compress},
			})
			if err != nil {
				t.Fatal(err)
			}
			if got := len(p.Source.Chain); got != 3 {
				t.Errorf("plan chain has %d layers", got)
			}
			if got := strings.Join(p.RunningStages(), ","); got != "flatten,convert" {
				t.Errorf("running stages %q", got)
			}
			data, err := tc.read(outPath)
			if err != nil {
				t.Fatal(err)
			}
			if err := want.Compare(data); err != nil {
				t.Fatal(err)
			}
			if r.Output.SHA256 != sumFile(t, outPath) {
				t.Error("reported sha256 does not match the output")
			}
			if fi, _ := os.Stat(outPath); fi.Size() != r.Output.Size {
				t.Errorf("reported size %d, file %d", r.Output.Size, fi.Size())
			}
			if tc.format == "raw" && p.Output.EstimatedSize != r.Output.Size {
				t.Errorf("raw estimate %d is not exact: %d", p.Output.EstimatedSize, r.Output.Size)
			}
			if tc.format == "qcow2" && r.Output.Size > p.Output.EstimatedSize {
				t.Errorf("qcow2 output %d exceeds the estimate %d", r.Output.Size, p.Output.EstimatedSize)
			}
			rep, err := engine.ReadReport(outPath)
			if err != nil || rep.Result.Output.SHA256 != r.Output.SHA256 {
				t.Errorf("report: %v", err)
			}
			if d, err := engine.CheckOutput(outPath, r.Output.Stamp); err != nil || d != engine.DriftNone {
				t.Errorf("fresh output drifts: %v %v", d, err)
			}
			if after := sumDir(t, src); !equalMaps(before, after) {
				t.Fatal("the source folder changed")
			}
			assertNoLeftovers(t, out)
		})
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestDrift(t *testing.T) {
	src, out := t.TempDir(), t.TempDir()
	e := newEngine(t)
	outPath := filepath.Join(out, "web.raw")
	_, r, err := convert(t, e, engine.Request{Source: engine.SourceSpec{Path: chainIn(t, src)}, Output: engine.OutputSpec{Path: outPath, Format: "raw"}})
	if err != nil {
		t.Fatal(err)
	}
	// Same size, same mtime, a byte changed in a sampled region.
	fi, _ := os.Stat(outPath)
	f, _ := os.OpenFile(outPath, os.O_RDWR, 0)
	f.WriteAt([]byte{0xee}, 10)
	f.Close()
	os.Chtimes(outPath, fi.ModTime(), fi.ModTime())
	if d, _ := engine.CheckOutput(outPath, r.Output.Stamp); d != engine.DriftChanged {
		t.Errorf("changed content: drift %q", d)
	}
	os.Remove(outPath)
	if d, _ := engine.CheckOutput(outPath, r.Output.Stamp); d != engine.DriftMissing {
		t.Errorf("missing output: drift %q", d)
	}
}

func TestOutputGuards(t *testing.T) {
	src, out := t.TempDir(), t.TempDir()
	head := chainIn(t, src)
	e := newEngine(t)
	plan := func(path string, overwrite bool) error {
		_, err := e.Plan(context.Background(), engine.Request{Source: engine.SourceSpec{Path: head},
			Output: engine.OutputSpec{Path: path, Format: "qcow2", Overwrite: overwrite}}, engine.PlanOptions{})
		return err
	}
	existing := filepath.Join(out, "existing.qcow2")
	os.WriteFile(existing, []byte("someone's file"), 0o644)
	link := filepath.Join(out, "link.qcow2")
	os.Symlink(filepath.Join(src, "web.vmdk"), link)
	hard := filepath.Join(out, "hard.qcow2")
	os.Link(filepath.Join(src, "web-000001.vmdk"), hard)
	for _, tc := range []struct {
		name      string
		path      string
		overwrite bool
		code      fault.Code
	}{
		{"output is the source head", head, true, fault.OutputIsSource},
		{"output is the base of the chain", filepath.Join(src, "web.vmdk"), true, fault.OutputIsSource},
		{"output is a symlink to a chain file", link, true, fault.OutputIsSource},
		{"output is a hard link to a chain file", hard, true, fault.OutputIsSource},
		{"unmanaged file exists", existing, false, fault.OutputExists},
		{"overwrite allowed", existing, true, ""},
		{"output folder missing", filepath.Join(out, "no", "such", "dir", "x.qcow2"), false, fault.OutputDirMissing},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := fault.CodeOf(plan(tc.path, tc.overwrite)); got != tc.code {
				t.Fatalf("got %q, want %q", got, tc.code)
			}
		})
	}
}

func TestSecondWriterIsRefused(t *testing.T) {
	src, out := t.TempDir(), t.TempDir()
	e := newEngine(t)
	outPath := filepath.Join(out, "web.qcow2")
	p, err := e.Plan(context.Background(), engine.Request{Source: engine.SourceSpec{Path: chainIn(t, src)}, Output: engine.OutputSpec{Path: outPath}}, engine.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	held, err := output.Acquire(outPath) // another writer holds the path
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.Apply(context.Background(), p, nil, engine.ApplyOptions{})
	if fault.CodeOf(err) != fault.OutputLocked {
		t.Fatalf("got %v, want output_locked", err)
	}
	if _, err := os.Stat(outPath); err == nil {
		t.Fatal("the refused writer wrote the output")
	}
	held.Release()
	if _, err := e.Apply(context.Background(), p, nil, engine.ApplyOptions{}); err != nil {
		t.Fatalf("after release: %v", err)
	}
}

func TestConcurrentAppliesToOnePathDoNotInterleave(t *testing.T) {
	src, out := t.TempDir(), t.TempDir()
	e := newEngine(t)
	outPath := filepath.Join(out, "web.qcow2")
	req := engine.Request{Source: engine.SourceSpec{Path: chainIn(t, src)}, Output: engine.OutputSpec{Path: outPath, Overwrite: true}}
	p, err := e.Plan(context.Background(), req, engine.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, errs[i] = e.Apply(context.Background(), p, nil, engine.ApplyOptions{})
		}(i)
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch fault.CodeOf(err) {
		case "":
			ok++
		case fault.OutputLocked:
		default:
			t.Errorf("unexpected error: %v", err)
		}
	}
	if ok == 0 {
		t.Fatal("no apply succeeded")
	}
	data, err := testimg.ReadQcow2(outPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := testimg.NewExpected(8*mib, baseLayer, snap1, snap2).Compare(data); err != nil {
		t.Fatal(err)
	}
	assertNoLeftovers(t, out)
}

func TestStaleTempFilesAreCleaned(t *testing.T) {
	src, out := t.TempDir(), t.TempDir()
	e := newEngine(t)
	outPath := filepath.Join(out, "web.qcow2")
	stale := filepath.Join(out, ".web.qcow2.vmconv-tmp-99999-deadbeef")
	os.WriteFile(stale, []byte("half a disk from a killed run"), 0o644)
	var events []engine.Event
	p, _ := e.Plan(context.Background(), engine.Request{Source: engine.SourceSpec{Path: chainIn(t, src)}, Output: engine.OutputSpec{Path: outPath}}, engine.PlanOptions{})
	if _, err := e.Apply(context.Background(), p, engine.SinkFunc(func(ev engine.Event) { events = append(events, ev) }), engine.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); err == nil {
		t.Fatal("stale temp file still there")
	}
	found := false
	for _, ev := range events {
		found = found || strings.Contains(ev.Message, "interrupted run")
	}
	if !found {
		t.Error("the cleanup was not reported")
	}
}

func TestSourceChangedAfterPlan(t *testing.T) {
	src, out := t.TempDir(), t.TempDir()
	head := chainIn(t, src)
	e := newEngine(t)
	p, err := e.Plan(context.Background(), engine.Request{Source: engine.SourceSpec{Path: head}, Output: engine.OutputSpec{Path: filepath.Join(out, "w.qcow2")}}, engine.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := testimg.QemuWrite(head, "vmdk", testimg.Layer{{Offset: 0, Length: 4096, Byte: 0x77}}); err != nil {
		t.Fatal(err)
	}
	_, err = e.Apply(context.Background(), p, nil, engine.ApplyOptions{})
	if fault.CodeOf(err) != fault.SourceChanged {
		t.Fatalf("got %v, want source_changed", err)
	}
}

// bigSource makes a source large enough that a conversion takes a while.
func bigSource(t *testing.T, dir string, size int64) string {
	t.Helper()
	raw := filepath.Join(dir, "big.raw")
	f, _ := os.Create(raw)
	f.Truncate(size)
	buf := make([]byte, 4*mib)
	for i := range buf {
		buf[i] = byte(i*7 + i/4096)
	}
	for off := int64(0); off < size; off += 2 * int64(len(buf)) {
		f.WriteAt(buf, off)
	}
	f.Close()
	img := filepath.Join(dir, "big.vmdk")
	if err := testimg.Run("qemu-img", "convert", "-f", "raw", "-O", "vmdk", raw, img); err != nil {
		t.Fatal(err)
	}
	os.Remove(raw)
	return img
}

func TestCancelLeavesNothing(t *testing.T) {
	src, out := t.TempDir(), t.TempDir()
	head := bigSource(t, src, 512*mib)
	e := newEngine(t)
	outPath := filepath.Join(out, "big.qcow2")
	p, err := e.Plan(context.Background(), engine.Request{Source: engine.SourceSpec{Path: head}, Output: engine.OutputSpec{Path: outPath, Compression: true}}, engine.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	sink := engine.SinkFunc(func(ev engine.Event) {
		if ev.Kind == engine.EventProgress && ev.Stage == engine.StageConvert {
			cancel() // Ctrl-C once the copy has started
		}
	})
	_, err = e.Apply(ctx, p, sink, engine.ApplyOptions{})
	if fault.CodeOf(err) != fault.Cancelled {
		t.Fatalf("got %v, want cancelled", err)
	}
	if _, err := os.Stat(outPath); err == nil {
		t.Fatal("a cancelled apply left a file at the output path")
	}
	assertNoLeftovers(t, out)
	if out, _ := exec.Command("pgrep", "-f", "qemu-img convert.*"+filepath.Base(out)).Output(); len(out) > 0 {
		t.Fatalf("qemu-img still running after cancel: %s", out)
	}
}

// TestFullDisk fills a small tmpfs while qemu-img writes to it.
func TestFullDisk(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root; CI runs as root")
	}
	src, out := t.TempDir(), t.TempDir()
	head := bigSource(t, src, 64*mib)
	if err := syscall.Mount("tmpfs", out, "tmpfs", 0, "size=48m"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	defer syscall.Unmount(out, 0)
	e := newEngine(t)
	outPath := filepath.Join(out, "big.raw")
	req := engine.Request{Source: engine.SourceSpec{Path: head}, Output: engine.OutputSpec{Path: outPath, Format: "raw"}}

	// At plan time: 32 MiB of data into 48 MiB fits, but not after a filler.
	filler := filepath.Join(out, "filler")
	os.WriteFile(filler, make([]byte, 40*mib), 0o644)
	_, err := e.Plan(context.Background(), req, engine.PlanOptions{})
	if fault.CodeOf(err) != fault.NoSpace {
		t.Fatalf("plan: got %v, want no_space", err)
	}
	if fe, _ := fault.As(err); !strings.Contains(fe.Error(), "only") || fe.Hint == "" {
		t.Errorf("diagnostic lacks the facts: %v", fe)
	}
	os.Remove(filler)

	// During the copy: the file system fills up under qemu-img.
	p, err := e.Plan(context.Background(), req, engine.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	applyFillingUp(t, e, p, out, outPath)
}

// applyFillingUp applies p while a 30 MiB filler takes the output file
// system's space as CONVERT starts: no_space, and nothing left behind.
func applyFillingUp(t *testing.T, e *engine.Engine, p *engine.Plan, out, outPath string) {
	t.Helper()
	sink := engine.SinkFunc(func(ev engine.Event) {
		if ev.Kind == engine.EventStageStarted && ev.Stage == engine.StageConvert {
			os.WriteFile(filepath.Join(out, "filler"), make([]byte, 30*mib), 0o644)
		}
	})
	_, err := e.Apply(context.Background(), p, sink, engine.ApplyOptions{})
	if fault.CodeOf(err) != fault.NoSpace {
		t.Fatalf("apply: got %v, want no_space", err)
	}
	if _, err := os.Stat(outPath); err == nil {
		t.Fatal("a failed apply left a file at the output path")
	}
	assertNoLeftovers(t, out)
}

// TestOutputIsReproducible converts one source twice: the same source must
// give byte-identical outputs, so output_sha256 identifies the content.
func TestOutputIsReproducible(t *testing.T) {
	src := t.TempDir()
	head := chainIn(t, src)
	e := newEngine(t)
	var sums []string
	for _, name := range []string{"a.qcow2", "b.qcow2"} {
		_, r, err := convert(t, e, engine.Request{Source: engine.SourceSpec{Path: head}, Output: engine.OutputSpec{Path: filepath.Join(t.TempDir(), name)}})
		if err != nil {
			t.Fatal(err)
		}
		sums = append(sums, r.Output.SHA256)
	}
	if sums[0] != sums[1] {
		t.Fatalf("two conversions of one source differ: %s vs %s", sums[0], sums[1])
	}
}

// TestOlderSnapshotRefused: naming a chain's base while its snapshot lies
// beside it would silently drop the snapshot's writes.
func TestOlderSnapshotRefused(t *testing.T) {
	src, out := t.TempDir(), t.TempDir()
	layers, err := testimg.VMDKChain(src, "web", "monolithicSparse", 8*mib, baseLayer, snap1, snap2)
	if err != nil {
		t.Fatal(err)
	}
	e := newEngine(t)
	req := func(head string, allow bool) engine.Request {
		return engine.Request{Source: engine.SourceSpec{Path: head, AllowOlderSnapshot: allow}, Output: engine.OutputSpec{Path: filepath.Join(out, "web.qcow2")}}
	}
	for i, head := range layers[1:] {
		_, err := e.Plan(context.Background(), req(head, false), engine.PlanOptions{})
		fe, ok := fault.As(err)
		if !ok || fe.Code != fault.OlderSnapshot || !strings.Contains(fe.Msg, filepath.Base(layers[i])) {
			t.Fatalf("planning %s: got %v, want older_snapshot naming %s", filepath.Base(head), err, filepath.Base(layers[i]))
		}
		if _, err := e.Plan(context.Background(), req(head, true), engine.PlanOptions{}); err != nil {
			t.Errorf("allow_older_snapshot: %v", err)
		}
	}
	if _, err := e.Plan(context.Background(), req(layers[0], false), engine.PlanOptions{}); err != nil {
		t.Errorf("the newest layer: %v", err)
	}
	if es, _ := os.ReadDir(out); len(es) != 0 {
		t.Errorf("a refused plan wrote %v", es)
	}
	// A qcow2 snapshot names its base as its backing file.
	q := t.TempDir()
	base := filepath.Join(q, "base.qcow2")
	if err := testimg.Run("qemu-img", "create", "-q", "-f", "qcow2", base, "8M"); err != nil {
		t.Fatal(err)
	}
	if err := testimg.Run("qemu-img", "create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", filepath.Join(q, "top.qcow2")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Plan(context.Background(), req(base, false), engine.PlanOptions{}); !fault.Is(err, fault.OlderSnapshot) {
		t.Errorf("qcow2 base with a snapshot beside it: got %v", err)
	}
}

// TestVMXSingleDiskPlan: a .vmx is a source like a path for the disk it
// names: a .vmx older than its disk's newest snapshot is refused like a
// path naming the base, and a VM with several disks is never cut down to
// its first one.
func TestVMXSingleDiskPlan(t *testing.T) {
	src, out := t.TempDir(), t.TempDir()
	layers, err := testimg.VMDKChain(src, "web", "monolithicSparse", 8*mib, baseLayer, snap1)
	if err != nil {
		t.Fatal(err)
	}
	vmxFile := func(disks ...string) string {
		text := "config.version = \"8\"\nmemSize = \"512\"\nscsi0.present = \"TRUE\"\n"
		for i, d := range disks {
			text += fmt.Sprintf("scsi0:%d.present = \"TRUE\"\nscsi0:%d.fileName = %q\n", i, i, filepath.Base(d))
		}
		p := filepath.Join(src, "web.vmx")
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	e := newEngine(t)
	req := func(vmx string) engine.Request {
		return engine.Request{Source: engine.SourceSpec{VMX: vmx}, Output: engine.OutputSpec{Path: filepath.Join(out, "web.qcow2")}}
	}
	p, err := e.Plan(context.Background(), req(vmxFile(layers[0])), engine.PlanOptions{})
	if err != nil {
		t.Fatalf("the newest layer: %v", err)
	}
	if p.Source.Kind != "vmx" || len(p.Source.Chain) != 2 {
		t.Errorf("planned %s with %d layers", p.Source.Kind, len(p.Source.Chain))
	}
	if _, err := e.Plan(context.Background(), req(vmxFile(layers[1])), engine.PlanOptions{}); !fault.Is(err, fault.OlderSnapshot) {
		t.Errorf("a .vmx naming the base: got %v", err)
	}
	two := filepath.Join(src, "data.vmdk")
	if err := testimg.Run("qemu-img", "create", "-q", "-f", "vmdk", two, "8M"); err != nil {
		t.Fatal(err)
	}
	_, err = e.Plan(context.Background(), req(vmxFile(layers[0], two)), engine.PlanOptions{})
	if fe, ok := fault.As(err); !ok || fe.Code != fault.InvalidRequest || !strings.Contains(fe.Msg, "2 disks") {
		t.Errorf("a two-disk VM as one disk: got %v", err)
	}
	if es, _ := os.ReadDir(out); len(es) != 0 {
		t.Errorf("a refused plan wrote %v", es)
	}
}
