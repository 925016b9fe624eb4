package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/vmconv/terraform-provider-vmconv/engine/boottest"
	"github.com/vmconv/terraform-provider-vmconv/engine/chain"
	"github.com/vmconv/terraform-provider-vmconv/engine/diskformat"
	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/engine/fingerprint"
	"github.com/vmconv/terraform-provider-vmconv/engine/fix"
	"github.com/vmconv/terraform-provider-vmconv/engine/guest"
	"github.com/vmconv/terraform-provider-vmconv/engine/output"
	"github.com/vmconv/terraform-provider-vmconv/engine/source"
	"github.com/vmconv/terraform-provider-vmconv/engine/virtio"
	"github.com/vmconv/terraform-provider-vmconv/engine/vsphere"
)

// StageResult records what a stage did.
type StageResult struct {
	Name       StageName `json:"name"`
	Status     string    `json:"status"` // ran, skipped
	Reason     string    `json:"reason,omitempty"`
	DurationMS int64     `json:"duration_ms"`
}

// OutputResult describes the written output.
type OutputResult struct {
	Path       string            `json:"path"`
	Format     string            `json:"format"`
	Size       int64             `json:"size"`
	SHA256     string            `json:"sha256"`
	Stamp      fingerprint.Stamp `json:"stamp"`
	ReportPath string            `json:"report_path"`
	// Volume is the published volume of a pool output; the staging
	// Path is gone by then.
	Volume *VolumeResult `json:"volume,omitempty"`
}

// Result is what Apply did.
type Result struct {
	Output OutputResult `json:"output"`
	// Disks are a whole VM's images, in its order; Output is then its
	// folder, with their sizes summed.
	Disks  []OutputResult `json:"disks,omitempty"`
	Stages []StageResult  `json:"stages"`
	Guest  *guest.Info    `json:"guest,omitempty"`
	Fixes  *fix.Result    `json:"fixes,omitempty"`
	// Drivers are the VirtIO drivers a Windows guest received.
	Drivers []virtio.Driver `json:"drivers,omitempty"`
	// HiveBackups is the folder holding a Windows guest's hives as they
	// were before FIX edited them.
	HiveBackups string           `json:"hive_backups,omitempty"`
	BootTest    *boottest.Result `json:"boot_test,omitempty"`
	Warnings    []string         `json:"warnings"`
	// CacheEntries are the cache folders the source was read from, whose
	// user the output is until it is deleted (releaseCache).
	CacheEntries []string `json:"cache_entries,omitempty"`
	// Warm is a warm migration's syncs and downtime.
	Warm *WarmResult `json:"warm,omitempty"`
	// Appliance is where the libguestfs appliance's time went: its launch,
	// each kind of call, each guest command by program, its shutdown.
	Appliance []guest.CallStat `json:"appliance,omitempty"`
}

// Report is the JSON document written beside the output.
type Report struct {
	Tool    string  `json:"tool"`
	Created string  `json:"created"`
	Plan    *Plan   `json:"plan"`
	Result  *Result `json:"result"`
	// Publisher is the process that wrote the output (see Adopt).
	Publisher *Publisher `json:"publisher,omitempty"`
}

// QemuFormat is the qemu driver of an output format name.
func QemuFormat(f string) string { return diskformatDriver(f) }

// WriteReport rewrites the report beside an output, and its Markdown
// summary.
func WriteReport(outputPath string, r *Report) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := output.WriteAtomic(output.ReportPath(outputPath), b, 0o644); err != nil {
		return err
	}
	return output.WriteAtomic(output.MarkdownPath(outputPath), []byte(r.Markdown()), 0o644)
}

// ReadReport loads the report written beside an output.
func ReadReport(outputPath string) (*Report, error) {
	b, err := os.ReadFile(output.ReportPath(outputPath))
	if err != nil {
		return nil, err
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("report %s: %w", output.ReportPath(outputPath), err)
	}
	return &r, nil
}

// Drift says whether an output still is what was written.
type Drift string

const (
	DriftNone    Drift = "none"
	DriftMissing Drift = "missing"
	DriftChanged Drift = "changed"
)

// CheckOutput compares the output at path with the stamp taken when it was
// written: size, modification time and sampled content. It reads about
// 4 MiB whatever the disk's size, so it is cheap enough for every refresh.
func CheckOutput(path string, want fingerprint.Stamp) (Drift, error) {
	got, err := fingerprint.Of(path)
	if errors.Is(err, fs.ErrNotExist) {
		return DriftMissing, nil
	}
	if err != nil {
		return "", err
	}
	if !got.Equal(want) {
		return DriftChanged, nil
	}
	return DriftNone, nil
}

// DiskInfo describes a disk without converting it.
type DiskInfo struct {
	Source SourcePlan  `json:"source"`
	Guest  *guest.Info `json:"guest,omitempty"`
	// Inspection is "inspected", "cached" or "skipped".
	Inspection string   `json:"inspection"`
	Warnings   []string `json:"warnings,omitempty"`
}

// DescribeDisk resolves a disk's chain and fingerprint and, with inspect,
// finds its guest (cached by fingerprint, like plan-time inspection). It
// writes nothing but scratch and cache files.
func (e *Engine) DescribeDisk(ctx context.Context, src SourceSpec, inspect bool) (*DiskInfo, error) {
	if src.Path == "" {
		return nil, fault.New(fault.InvalidRequest, "", "no path is set").WithHint("Set path to the disk's newest file.")
	}
	c, err := chain.Resolve(src.Path, chain.Options{Format: diskformat.Format(src.Format), AllowParentCIDMismatch: src.AllowParentCIDMismatch})
	if err != nil {
		return nil, err
	}
	fp, _, err := fingerprint.Files(filePaths(c))
	if err != nil {
		return nil, fault.Wrap(fault.SourceUnreadable, c.Head().Path, err, "cannot fingerprint the disk")
	}
	d := &DiskInfo{
		Source: SourcePlan{Kind: "path", Path: c.Head().Path, Format: string(c.Head().Format), Subformat: c.Head().Subformat,
			VirtualSize: c.VirtualSize(), Fingerprint: fp, Chain: c.Layers},
		Inspection: "skipped",
		Warnings:   c.Warnings,
	}
	if !inspect {
		return d, nil
	}
	g, err := e.planGuest(ctx, []resolvedDisk{{c: c}}, fp, Request{Source: src})
	if err != nil {
		return nil, err
	}
	d.Guest, d.Inspection = g.Guest, g.How
	d.Warnings = append(d.Warnings, g.Warnings...)
	return d, nil
}

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
	vm := len(p.Disks) > 0
	read := ReadReport
	if vm {
		read = ReadVMReport
	}
	rep, err := read(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) && !vm {
			return nil, output.CheckFree(path, false)
		}
		return nil, fault.Wrap(fault.OutputExists, path, err, "something exists at the output path and its vmconv report cannot be read").
			WithHint("Move or delete it, or choose another output path.")
	}
	if rep.Plan == nil || rep.Result == nil || rep.Plan.FormatVersion != PlanFormatVersion || (!vm && rep.Result.Output.SHA256 == "") {
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
	outputs := []OutputResult{rep.Result.Output}
	if vm {
		outputs = rep.Result.Disks
	}
	for _, o := range outputs {
		drift, err := CheckOutput(o.Path, o.Stamp)
		if err != nil {
			return nil, fault.Wrap(fault.OutputNotWritable, o.Path, err, "cannot read the output to compare it with its report")
		}
		if drift != DriftNone {
			return nil, foreign(path, "it was modified after vmconv wrote it (the size, modification time or sampled content of "+filepath.Base(o.Path)+" no longer match its report)")
		}
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

// DeleteOutput removes a conversion's output and everything vmconv keeps
// beside it (report, boot log, a Windows guest's hive backups), under the
// output's lock so that a conversion writing the path is never deleted
// under. A disk a domain runs on is refused; what is already gone is not
// an error.
func DeleteOutput(outputPath string) error {
	if abs, err := filepath.Abs(outputPath); err == nil {
		outputPath = abs
	}
	if holders, err := diskHolders(outputPath); err == nil && len(holders) > 0 {
		return fault.New(fault.DiskInUse, outputPath, "the disk is in use by domain %s, which runs on an overlay of it", strings.Join(holders, ", ")).
			WithHint("Destroy the domain first (Terraform does, when the domain refers to this conversion's output.path). A disk a running guest depends on is never deleted under it.")
	}
	if _, err := os.Stat(filepath.Dir(outputPath)); errors.Is(err, fs.ErrNotExist) {
		return nil // the whole folder is gone: nothing left to delete
	}
	lock, err := output.Acquire(outputPath)
	if err != nil {
		return err
	}
	defer lock.Release() // removes the lock file too
	for _, p := range []string{outputPath, output.ReportPath(outputPath), output.MarkdownPath(outputPath), output.BootLogPath(outputPath)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fault.Wrap(fault.OutputNotWritable, p, err, "cannot remove a file of the conversion")
		}
	}
	if err := os.RemoveAll(output.HivesPath(outputPath)); err != nil {
		return fault.Wrap(fault.OutputNotWritable, output.HivesPath(outputPath), err, "cannot remove the hive backups")
	}
	lock.CleanStale()
	return nil
}

// RerunBootTest boots an existing output again with new boot test
// settings, and records the result in its report. It returns nil, nil when
// there is nothing to boot (the boot test is off, or the disk holds no
// operating system).
func (e *Engine) RerunBootTest(ctx context.Context, req Request) (*boottest.Result, error) {
	if !req.BootTest.Enabled {
		return nil, nil
	}
	out := req.Output
	if abs, err := filepath.Abs(out.Path); err == nil {
		out.Path = abs
	}
	rep, err := ReadReport(out.Path)
	if err != nil {
		return nil, fault.Wrap(fault.InvalidRequest, output.ReportPath(out.Path), err, "the boot test needs the report written beside the output")
	}
	if rep.Result == nil || !rep.Result.Guest.HasOS() {
		return nil, nil
	}
	res, err := e.BootTest(ctx, out.Path, QemuFormat(out.Format), rep.Result.Guest, req.BootTest.Options, output.BootLogPath(out.Path))
	if err != nil {
		return nil, err
	}
	if !res.Passed() {
		return nil, boottest.Error(res, rerunSite(rep))
	}
	rep.Result.BootTest = res
	if err := WriteReport(out.Path, rep); err != nil {
		return nil, err
	}
	return res, nil
}

// DescribeVSphereVM reads a VM's shape, disks and NICs from vCenter or
// ESXi, without copying anything. Only the spec's connection settings,
// Datacenter and VM are used.
func DescribeVSphereVM(ctx context.Context, s VSphereSpec) (*VSphereVM, error) {
	c, err := vsphere.Connect(ctx, source.VSphereOptions(&s))
	if err != nil {
		return nil, err
	}
	defer c.Logout(context.WithoutCancel(ctx))
	return c.FindVM(ctx, s.Datacenter, s.VM)
}

// ReportPath is where the report of the output at outputPath is written.
func ReportPath(outputPath string) string { return output.ReportPath(outputPath) }

// ReportSuffix is what ReportPath appends to an output's path.
const ReportSuffix = output.ReportSuffix

// HasReport reports whether a report lies beside the output at outputPath,
// which makes a file there a candidate for Adopt.
func HasReport(outputPath string) bool {
	_, err := os.Stat(output.ReportPath(outputPath))
	return err == nil
}

// WritePlanFile writes a plan where a caller asked for it: as Markdown
// when the path ends in .md, as JSON otherwise.
func WritePlanFile(path string, p *Plan) error {
	if strings.HasSuffix(path, ".md") {
		// For a comment on a pull request: what the migration will do.
		return output.WriteAtomic(path, []byte(PlanMarkdown(p)), 0o644)
	}
	b, err := p.JSON()
	if err != nil {
		return err
	}
	return output.WriteAtomic(path, append(b, '\n'), 0o644)
}

// diskHolders lists the domains that run on an output, for refusing to
// delete it under them.
func diskHolders(outputPath string) ([]string, error) {
	hs, err := output.Holds(outputPath)
	var names []string
	for _, h := range hs {
		names = append(names, h.Domain)
	}
	return names, err
}

// rerunSite is the site of a conversion's boot test run again on its
// existing output, as its report describes the conversion.
func rerunSite(rep *Report) boottest.Site {
	s := boottest.Site{Rerun: true}
	if rep != nil && rep.Plan != nil {
		f := fixesOf(rep.Plan.Request.Fixes)
		s.Fixes = &f
	}
	return s
}
