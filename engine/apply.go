package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/vmconv/terraform-provider-vmconv/engine/chain"
	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/engine/fingerprint"
	"github.com/vmconv/terraform-provider-vmconv/engine/guest"
	"github.com/vmconv/terraform-provider-vmconv/engine/internal/rawcopy"
	"github.com/vmconv/terraform-provider-vmconv/engine/output"
	"github.com/vmconv/terraform-provider-vmconv/engine/source"
)

// ApplyOptions qualify an Apply call.
type ApplyOptions struct {
	// ManagedOutput allows replacing an existing file at the output path
	// that belongs to the caller.
	ManagedOutput bool
}

// job carries one Apply through the stages.
type job struct {
	e    *Engine
	plan *Plan
	sink Sink
	work string
	// disks are every disk of the guest in the VM's order: one for a disk
	// conversion.
	disks []*diskWork
	// lock holds a disk conversion's output path; set holds a whole VM's
	// output folder and the images being written into it.
	lock *output.Lock
	set  *output.Set
	res  *Result

	session guest.Session // the appliance, from INSPECT through FIX
	// freeSlot gives the conversion slot back early: an upload to the
	// libvirt host waits for an upload slot instead, so the next
	// conversion can use the CPU meanwhile.
	freeSlot func()
	accel    string
	// hives are a Windows guest's hives as they were before FIX edited
	// them, kept beside the report.
	hives map[string][]byte
	// warm is set for a warm migration's cutover.
	warm *source.WarmCutover
}

// diskWork is one disk through the stages.
type diskWork struct {
	c    *chain.Chain
	slot guest.DiskSlot
	// input is what INSPECT, FIX and CONVERT read: an overlay on the
	// pinned chain.
	input, inputDriver string
	// tmp is CONVERT's output before it is published at out.
	tmp, out string
	sha256   string
}

// skip is returned by a stage that decides at run time not to run.
type skip struct{ reason string }

func (s skip) Error() string { return s.reason }

func (j *job) emit(kind EventKind, stage StageName, msg string, fields map[string]any) {
	j.sink.Event(Event{Time: time.Now(), Kind: kind, Stage: stage, Message: msg, Fields: fields})
}

// stage is one typed step of the pipeline.
type stage interface {
	name() StageName
	run(ctx context.Context, j *job) error
}

// Apply executes a plan. It re-checks every decision that could have gone
// stale since Plan (the source's fingerprint, the output path) and fails
// rather than improvise. On any failure nothing is left at the output path.
func (e *Engine) Apply(ctx context.Context, p *Plan, sink Sink, opts ApplyOptions) (res *Result, err error) {
	if sink == nil {
		sink = nopSink{}
	}
	if p == nil || p.FormatVersion != PlanFormatVersion {
		return nil, fault.New(fault.InvalidRequest, "", "the plan is missing or from an incompatible version")
	}
	select {
	case e.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, fault.Wrap(fault.Cancelled, p.Output.Path, ctx.Err(), "cancelled while waiting for a free conversion slot")
	}
	var freed sync.Once
	freeSlot := func() { freed.Do(func() { <-e.sem }) }
	defer freeSlot()
	j := &job{e: e, plan: p, sink: sink, res: &Result{}, freeSlot: freeSlot}
	j.res.Warnings = append(j.res.Warnings, p.Warnings...)
	defer func() {
		if err != nil && j.warm != nil {
			// A cutover that failed after the VM went down.
			err = source.RestartAfterFailedCutover(ctx, p.Request.Source.VSphere, j.warm.PowerDown, err)
		}
	}()

	if len(p.Disks) > 0 {
		if err := checkVMNotHeld(p.Output.Path); err != nil {
			return nil, err
		}
		set, err := output.BeginSet(p.Output.Path, output.SetOptions{Replace: opts.ManagedOutput || p.Request.Output.Overwrite || p.Request.Output.VM})
		if err != nil {
			return nil, err
		}
		defer set.Abort()
		j.set = set
	} else {
		lock, err := output.Acquire(p.Output.Path)
		if err != nil {
			return nil, err
		}
		defer lock.Release()
		j.lock = lock
		if removed, _ := lock.CleanStale(); len(removed) > 0 {
			j.emit(EventInfo, "", fmt.Sprintf("removed %d temporary file(s) left by an interrupted run", len(removed)), map[string]any{"files": removed})
		}
	}
	if err := e.recheck(ctx, j, opts); err != nil {
		return nil, err
	}
	work, err := e.scratch("apply-")
	if err != nil {
		return nil, err
	}
	j.work = work
	defer os.RemoveAll(work)
	defer func() {
		for _, d := range j.disks {
			if d.tmp != "" && j.set == nil {
				os.Remove(d.tmp)
			}
		}
	}()

	defer j.closeSession()
	stages := []stage{fetchStage{}, flattenStage{}, inspectStage{}, fixStage{}, convertStage{}, validateStage{}}
	for _, s := range stages {
		sp := p.Stage(s.name())
		if !sp.Run {
			j.emit(EventStageSkipped, s.name(), sp.Reason, nil)
			j.res.Stages = append(j.res.Stages, StageResult{Name: s.name(), Status: "skipped", Reason: sp.Reason})
			continue
		}
		j.emit(EventStageStarted, s.name(), sp.Reason, nil)
		start := time.Now()
		stop := j.heartbeat(s.name())
		err := s.run(ctx, j)
		stop()
		if err != nil {
			if sk, ok := err.(skip); ok {
				j.emit(EventStageSkipped, s.name(), sk.reason, nil)
				j.res.Stages = append(j.res.Stages, StageResult{Name: s.name(), Status: "skipped", Reason: sk.reason})
				continue
			}
			return j.res, stageError(ctx, s.name(), p.Output.Path, err)
		}
		d := time.Since(start)
		j.res.Stages = append(j.res.Stages, StageResult{Name: s.name(), Status: "ran", Reason: sp.Reason, DurationMS: d.Milliseconds()})
		j.emit(EventStageFinished, s.name(), fmt.Sprintf("%s finished in %s", s.name(), d.Round(time.Millisecond)), nil)
	}
	if err := ctx.Err(); err != nil {
		return nil, stageError(ctx, StageConvert, p.Output.Path, err)
	}
	if p.Output.Volume != nil && j.set != nil {
		if err := e.publishSet(ctx, j); err != nil {
			return j.res, err
		}
		return j.res, e.publishVolumeSet(ctx, j)
	}
	if p.Output.Volume != nil {
		return j.res, e.publishVolume(ctx, j)
	}
	if err := e.publish(ctx, j); err != nil {
		return j.res, err
	}
	if j.warm != nil {
		// Published: the staging images have served their purpose.
		os.RemoveAll(j.warm.Staging)
	}
	return j.res, nil
}

// recheck repeats the plan's checks against the world as it is now.
func (e *Engine) recheck(ctx context.Context, j *job, opts ApplyOptions) error {
	p := j.plan
	req := p.Request
	if v := req.Source.VSphere; v != nil && v.Warm != nil {
		// A cutover shuts the VM down as it fetches: the VM must still be
		// the one planned before that.
		pre, err := e.resolveSource(ctx, req.Source, true, false, j.sink, newCacheHolds(ctx, ownerOf(req.Output), false))
		if err != nil {
			return err
		}
		if pre.fp != p.Source.Fingerprint {
			return sourceChanged(p, pre)
		}
	}
	rs, err := e.resolveSource(ctx, req.Source, req.Output.Dir != "", true, j.sink, newCacheHolds(ctx, ownerOf(req.Output), false))
	if err != nil {
		return err
	}
	j.res.CacheEntries = rs.cacheEntries
	if rs.local != nil {
		j.warm = rs.local.Warm
	}
	for _, d := range rs.disks {
		if d.c == nil {
			return fault.New(fault.Internal, p.Source.Path, "the source was not made local")
		}
	}
	if rs.c == nil {
		return fault.New(fault.Internal, p.Source.Path, "the source was not made local")
	}
	if rs.fp != p.Source.Fingerprint {
		return sourceChanged(p, rs)
	}
	if len(p.Disks) > 0 && len(rs.disks) != len(p.Disks) {
		return fault.New(fault.SourceChanged, p.Source.Path, "the VM had %d disks when it was planned and has %d now", len(p.Disks), len(rs.disks)).
			WithHint("Run terraform plan again and review the new plan.")
	}
	for i, d := range rs.disks {
		w := &diskWork{c: d.c, slot: d.Slot, out: p.Output.Path}
		if len(p.Disks) > 0 {
			w.out = p.Disks[i].Output.Path
		}
		j.disks = append(j.disks, w)
	}
	if p.Source.Deferred {
		// Planned from the remote ends' metadata: the images are checked
		// now, after FETCH and before a byte of the output is written.
		for _, d := range rs.disks {
			if err := e.checkChain(ctx, d.c); err != nil {
				return rs.src.Relabel(err)
			}
		}
	}
	if j.set == nil {
		if err := output.CheckDir(p.Output.Path); err != nil {
			return err
		}
	}
	need := p.Output.RequiredSpace
	for _, d := range j.disks {
		if err := output.CheckNotSource(d.out, rs.files()); err != nil {
			return err
		}
		if fi, err := os.Stat(d.out); err == nil {
			need -= fi.Size()
		}
	}
	if j.set == nil && !opts.ManagedOutput {
		if err := output.CheckFree(p.Output.Path, req.Output.Overwrite); err != nil {
			return err
		}
	}
	return output.CheckSpace(p.Output.Path, need)
}

// sourceChanged refuses an apply whose source is not what was planned.
func sourceChanged(p *Plan, rs *resolvedSource) error {
	f := fault.New(fault.SourceChanged, p.Source.Path, "the source disk changed after the plan was made").
		WithHint("Something wrote to the source (or replaced a file of its chain) between plan and apply. Run terraform plan again and review the new plan.")
	for _, c := range ChangedFiles(p.Source.Files, rs.stamps) {
		f = f.WithFact("Changed file", c)
	}
	return f.WithFact("Planned fingerprint", p.Source.Fingerprint).WithFact("Current fingerprint", rs.fp)
}

func stageError(ctx context.Context, s StageName, file string, err error) error {
	if ctx.Err() != nil {
		fe := fault.Wrap(fault.Cancelled, file, ctx.Err(), "cancelled during %s", s).
			WithHint("The apply was interrupted or timed out. Nothing was written at the output path; the next apply starts over.")
		fe.Stage = string(s)
		return fe
	}
	fe, ok := fault.As(err)
	if !ok {
		fe = fault.Wrap(fault.Internal, file, err, "%s failed", s)
	}
	if fe.Stage == "" {
		fe.Stage = string(s)
	}
	return fe
}

// publish writes the output's report, then renames the finished output
// into place. The report comes first so that an output at the path always
// has one, even when the process is killed right after the rename and
// Terraform never records it: the next apply recognises it by its report
// (see Published). The stamp is taken from the temporary file, which the
// rename does not change (same inode, size, mtime and bytes).
func (e *Engine) publish(ctx context.Context, j *job) error {
	if j.set != nil {
		return e.publishSet(ctx, j)
	}
	p, d := j.plan, j.disks[0]
	st, err := fingerprint.Of(d.tmp)
	if err != nil {
		return fault.Wrap(fault.Internal, p.Output.Path, err, "cannot stamp the output")
	}
	j.res.Output.Path, j.res.Output.Format = p.Output.Path, p.Output.Format
	j.res.Output.Size, j.res.Output.Stamp, j.res.Output.SHA256 = st.Size, st, d.sha256
	j.res.Output.ReportPath = output.ReportPath(p.Output.Path)
	if len(j.hives) > 0 {
		if err := keepHives(output.HivesPath(p.Output.Path), j.hives); err != nil {
			return err
		}
		j.res.HiveBackups = output.HivesPath(p.Output.Path)
	}
	report := &Report{Tool: "vmconv", Created: time.Now().UTC().Format(time.RFC3339), Plan: p, Result: j.res, Publisher: thisProcess()}
	if err := WriteReport(p.Output.Path, report); err != nil {
		return fault.Wrap(fault.OutputNotWritable, j.res.Output.ReportPath, err, "cannot write the report")
	}
	testHold(ctx, "before-publish-rename")
	if err := output.Commit(d.tmp, p.Output.Path); err != nil {
		if _, serr := os.Lstat(p.Output.Path); serr != nil {
			os.Remove(j.res.Output.ReportPath) // a report of nothing
			os.Remove(output.MarkdownPath(p.Output.Path))
		}
		return toolFault(context.Background(), err, p.Output.Path, "cannot move the finished output into place")
	}
	d.tmp = ""
	testHold(ctx, "after-publish-rename")
	j.emit(EventInfo, "", "output written", map[string]any{"path": p.Output.Path, "size": st.Size, "sha256": j.res.Output.SHA256})
	return nil
}

// VMReportName is a whole VM's report, inside its output folder, and
// VMMarkdownName its Markdown summary.
const (
	VMReportName   = "vmconv-report.json"
	VMMarkdownName = "vmconv-report.md"
)

// publishSet writes a whole VM's report into the set beside its images and
// publishes the folder: the previous set, or nothing, until the new one is
// complete in its place.
func (e *Engine) publishSet(ctx context.Context, j *job) error {
	p := j.plan
	j.res.Output.Path, j.res.Output.Format = p.Output.Path, p.Output.Format
	j.res.Output.ReportPath = filepath.Join(p.Output.Path, VMReportName)
	for _, d := range j.disks {
		st, err := fingerprint.Of(d.tmp)
		if err != nil {
			return fault.Wrap(fault.Internal, d.out, err, "cannot stamp the output")
		}
		j.res.Disks = append(j.res.Disks, OutputResult{Path: d.out, Format: p.Output.Format, Size: st.Size, Stamp: st, SHA256: d.sha256})
		j.res.Output.Size += st.Size
	}
	for name, b := range j.hives {
		// A Windows guest's hives as they were before FIX, as members of
		// the set: they are published with the images they belong to.
		hp, err := j.set.Path("hive-" + name + ".orig")
		if err == nil {
			err = os.WriteFile(hp, b, 0o644)
		}
		if err != nil {
			return fault.Wrap(fault.OutputNotWritable, p.Output.Path, err, "cannot keep the hive backups")
		}
		j.res.HiveBackups = p.Output.Path
	}
	if j.warm != nil {
		j.res.Warm = warmResult(j.warm, time.Now())
	}
	report := &Report{Tool: "vmconv", Created: time.Now().UTC().Format(time.RFC3339), Plan: p, Result: j.res, Publisher: thisProcess()}
	rep, _ := json.MarshalIndent(report, "", "  ")
	for name, data := range map[string][]byte{VMReportName: rep, VMMarkdownName: []byte(report.Markdown())} {
		rp, err := j.set.Path(name)
		if err != nil {
			return err
		}
		if err := os.WriteFile(rp, data, 0o644); err != nil {
			return fault.Wrap(fault.OutputNotWritable, j.res.Output.ReportPath, err, "cannot write the report")
		}
	}
	testHold(ctx, "before-publish-rename")
	if err := j.set.Commit(ctx); err != nil {
		return err
	}
	testHold(ctx, "after-publish-rename")
	j.emit(EventInfo, "", "VM written", map[string]any{"path": p.Output.Path, "disks": len(j.disks), "size": j.res.Output.Size})
	return nil
}

// keepHives writes a Windows guest's original hives into a temporary
// folder and swaps it in for dir, so a killed run leaves a temporary that
// the next holder of the lock removes, never a half-written dir.
func keepHives(dir string, hives map[string][]byte) error {
	tmp := output.TempName(dir)
	err := os.Mkdir(tmp, 0o755)
	for name, b := range hives {
		if err == nil {
			err = os.WriteFile(filepath.Join(tmp, name+".orig"), b, 0o644)
		}
		if err == nil {
			err = rawcopy.Fsync(filepath.Join(tmp, name+".orig"))
		}
	}
	if err == nil {
		err = output.CommitDir(tmp, dir)
	}
	if err != nil {
		os.RemoveAll(tmp)
		return fault.Wrap(fault.OutputNotWritable, dir, err, "cannot keep the hive backups")
	}
	return nil
}

// TestHoldEnv names a fault-injection seam for the kill tests, which must
// SIGKILL terraform or the provider at exact moments of an apply (between
// the rename of the output into place and Terraform recording the state is
// a window of microseconds otherwise). When it names a hold point, Apply
// stops there until its context ends, then carries on. Unset, it does
// nothing. Hold points: "before-publish-rename" (the report is written, the
// output is not in place yet) and "after-publish-rename" (the output is in
// place, Apply has not returned).
const TestHoldEnv = "VMCONV_TEST_HOLD"

func testHold(ctx context.Context, point string) {
	if os.Getenv(TestHoldEnv) == point {
		<-ctx.Done()
	}
}
