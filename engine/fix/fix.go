// Package fix is the FIX stage: offline changes that make a VMware guest
// boot on KVM. Each fix is a unit with Applicable and Apply; every change it
// makes is recorded as data (file, before, after, reason); a dry run records
// the same changes without writing anything.
package fix

import (
	"context"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/engine/guest"
)

// Fstab modes.
const (
	FstabStabilizeAll = "stabilize-all"
	FstabByPathOnly   = "bypath-only"
	FstabNone         = "none"
)

// Options select and tune the fixes.
type Options struct {
	// Disabled names fixes not to run.
	Disabled []string `json:"disabled,omitempty"`
	// FstabMode is stabilize-all (default), bypath-only or none.
	FstabMode string `json:"fstab_mode,omitempty"`
	// KeepNetworkIdentity keeps the source MAC pinning and NIC names, for
	// domains that carry the source MAC over.
	KeepNetworkIdentity bool `json:"keep_network_identity,omitempty"`
	// KeepVMwareTools leaves VMware tools installed.
	KeepVMwareTools bool `json:"keep_vmware_tools,omitempty"`
	DryRun          bool `json:"dry_run,omitempty"`
	// VirtioWin is the virtio-win folder Windows guests take their
	// drivers from.
	VirtioWin string `json:"virtio_win,omitempty"`
}

// Fix is one unit of offline repair.
type Fix interface {
	Name() string
	Summary() string
	// Applicable says whether the fix has work to do on this guest, and why.
	Applicable(c *Context) (bool, string)
	Apply(c *Context) error
}

// All returns the Linux fixes in the order they run: tools and network first,
// then what the boot depends on, the initramfs after every file the
// initramfs tools read, the relabel last, then the verification.
func All() []Fix {
	return []Fix{vmwareTools{}, network{}, fstab{}, grub{}, uefiFallback{}, initramfs{}, selinuxRelabel{}, verify{}}
}

// Status of one fix in a run.
const (
	StatusApplied       = "applied"
	StatusPlanned       = "planned" // dry run
	StatusNotApplicable = "not-applicable"
	StatusDisabled      = "disabled"
)

// Outcome is what happened to one fix.
type Outcome struct {
	Name   string `json:"name"`
	Status string `json:"status"`
	Reason string `json:"reason"`
}

// Context is what a fix works with.
type Context struct {
	Ctx      context.Context
	Info     *guest.Info
	FS       guest.FS
	Opts     Options
	fix      string
	changes  []guest.Change
	warnings []string
	// softFail names the fixes whose absence verify should only warn about.
	softFail map[string]bool
}

// Warn records a warning for the report.
func (c *Context) Warn(format string, args ...any) {
	c.warnings = append(c.warnings, fmt.Sprintf("%s: %s", c.fix, fmt.Sprintf(format, args...)))
}

// Write replaces (or creates) a file and records the change.
func (c *Context) Write(path string, data []byte, mode fs.FileMode, reason string) error {
	before, err := c.FS.ReadFile(path)
	existed := err == nil
	if existed && string(before) == string(data) {
		return nil
	}
	ch := guest.Change{Fix: c.fix, Action: "modified", Path: path, Reason: reason}
	if !existed {
		ch.Action = "created"
	}
	ch.Describe(before, data, existed, true)
	if err := c.FS.WriteFile(path, data, mode); err != nil {
		return fault.Wrap(fault.FixFailed, path, err, "%s: cannot write %s", c.fix, path)
	}
	c.changes = append(c.changes, ch)
	return nil
}

// Remove deletes a file and records the change.
func (c *Context) Remove(path, reason string) error {
	before, err := c.FS.ReadFile(path)
	if err != nil && !c.FS.Exists(path) {
		return nil
	}
	ch := guest.Change{Fix: c.fix, Action: "deleted", Path: path, Reason: reason}
	ch.Describe(before, nil, true, false)
	if err := c.FS.Remove(path); err != nil {
		return fault.Wrap(fault.FixFailed, path, err, "%s: cannot remove %s", c.fix, path)
	}
	c.changes = append(c.changes, ch)
	return nil
}

// Run executes a command in the guest and records it. In a dry run the
// command is recorded but not run.
func (c *Context) Run(reason string, argv ...string) (string, error) {
	ch := guest.Change{Fix: c.fix, Action: "command", Command: strings.Join(argv, " "), Reason: reason}
	out, err := c.FS.Command(c.Ctx, argv...)
	ch.Output = tail(out, 4096)
	c.changes = append(c.changes, ch)
	if err != nil {
		if c.Ctx.Err() != nil {
			return out, c.Ctx.Err()
		}
		return out, fault.Wrap(fault.FixFailed, "", err, "%s: %s failed", c.fix, argv[0]).
			WithFact("Command", strings.Join(argv, " ")).WithFact("Output", tail(out, 2000))
	}
	return out, nil
}

// Track records a file that a command changed (an initramfs image).
func (c *Context) Track(path, reason, before string, existed bool) {
	if _, dry := c.FS.(*dryFS); dry {
		// The command did not run: record what it will change, so the
		// plan lists what the apply will.
		ch := guest.Change{Fix: c.fix, Action: "modified", Path: path, Reason: reason}
		if !existed {
			ch.Action = "created"
		}
		c.changes = append(c.changes, ch)
		return
	}
	after, ok := c.Sum(path)
	if !ok {
		return
	}
	ch := guest.Change{Fix: c.fix, Action: "modified", Path: path, Reason: reason, AfterSHA256: after}
	if existed {
		ch.BeforeSHA256 = before
	} else {
		ch.Action = "created"
	}
	if ch.BeforeSHA256 != ch.AfterSHA256 {
		c.changes = append(c.changes, ch)
	}
}

// Sum returns the SHA-256 of a guest file, computed in the guest when the
// session can: a command's output (an initramfs) is tens of MiB, which the
// appliance would otherwise send over its channel before and after.
func (c *Context) Sum(path string) (string, bool) {
	if s, ok := c.FS.(guest.Summer); ok {
		h, err := s.SHA256(path)
		return h, err == nil
	}
	b, err := c.FS.ReadFile(path)
	if err != nil {
		return "", false
	}
	return guest.SHA256(b), true
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}

// Result is a whole FIX run.
type Result struct {
	Outcomes []Outcome      `json:"outcomes"`
	Changes  []guest.Change `json:"changes"`
	Warnings []string       `json:"warnings,omitempty"`
}

// Validate checks option values.
func (o Options) Validate() error {
	for _, d := range o.Disabled {
		if !slices.Contains(Names(), d) {
			return fault.New(fault.InvalidRequest, "", "unknown fix %q in fixes.disabled", d).
				WithHint("Known fixes: %s.", strings.Join(Names(), ", "))
		}
	}
	switch o.FstabMode {
	case "", FstabStabilizeAll, FstabByPathOnly, FstabNone:
	default:
		return fault.New(fault.InvalidRequest, "", "fixes.fstab_mode %q is not stabilize-all, bypath-only or none", o.FstabMode)
	}
	return nil
}

type linuxRunner struct{}

func (linuxRunner) Names() []string {
	var out []string
	for _, f := range All() {
		out = append(out, f.Name())
	}
	return out
}

// Run applies the Linux fixes to a mounted guest (or, with Options.DryRun,
// records what they would do).
func (linuxRunner) Run(ctx context.Context, info *guest.Info, fsys guest.FS, o Options) (*Report, error) {
	res, err := run(ctx, info, fsys, o, o.DryRun)
	if res == nil {
		return nil, err
	}
	return &Report{Result: *res}, err
}

func run(ctx context.Context, info *guest.Info, fsys guest.FS, o Options, dry bool) (*Result, error) {
	if o.FstabMode == "" {
		o.FstabMode = FstabStabilizeAll
	}
	if dry {
		fsys = newDryFS(fsys)
	}
	c := &Context{Ctx: ctx, Info: info, FS: fsys, Opts: o, softFail: map[string]bool{}}
	disabled := map[string]bool{}
	for _, d := range o.Disabled {
		disabled[d] = true
		c.softFail[d] = true
	}
	if o.KeepNetworkIdentity {
		c.softFail["network"] = true
	}
	res := &Result{}
	for _, f := range All() {
		c.fix = f.Name()
		if disabled[f.Name()] {
			res.Outcomes = append(res.Outcomes, Outcome{f.Name(), StatusDisabled, "turned off in fixes.disabled"})
			continue
		}
		ok, why := f.Applicable(c)
		if !ok {
			res.Outcomes = append(res.Outcomes, Outcome{f.Name(), StatusNotApplicable, why})
			continue
		}
		status := StatusApplied
		if dry {
			status = StatusPlanned
		}
		if err := f.Apply(c); err != nil {
			res.Changes, res.Warnings = c.changes, c.warnings
			return res, err
		}
		res.Outcomes = append(res.Outcomes, Outcome{f.Name(), status, why})
	}
	res.Changes, res.Warnings = c.changes, c.warnings
	return res, nil
}
