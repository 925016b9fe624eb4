package engine

import (
	"encoding/json"

	"github.com/vmconv/terraform-provider-vmconv/engine/chain"
	"github.com/vmconv/terraform-provider-vmconv/engine/fix"
	"github.com/vmconv/terraform-provider-vmconv/engine/ovf"
	"github.com/vmconv/terraform-provider-vmconv/engine/source"
	"github.com/vmconv/terraform-provider-vmconv/engine/validate"
)

// PlanFormatVersion is bumped when the plan's JSON changes incompatibly.
const PlanFormatVersion = 1

// StageName names a pipeline stage.
type StageName string

const (
	StageFetch    StageName = "fetch"
	StageFlatten  StageName = "flatten"
	StageInspect  StageName = "inspect"
	StageFix      StageName = "fix"
	StageConvert  StageName = "convert"
	StageValidate StageName = "validate"
)

// Stages lists the pipeline in order.
var Stages = []StageName{StageFetch, StageFlatten, StageInspect, StageFix, StageConvert, StageValidate}

// Request is what a user asks for: one source disk, one output image, and
// how to fix and test the guest on it.
type Request struct {
	Source   SourceSpec   `json:"source"`
	Output   OutputSpec   `json:"output"`
	Inspect  InspectSpec  `json:"inspect"`
	Fixes    FixSpec      `json:"fixes"`
	BootTest BootTestSpec `json:"boot_test"`
}

// InspectSpec tunes inspection.
type InspectSpec struct {
	// Root chooses the operating system when the disk holds several.
	Root string `json:"root,omitempty"`
}

// FixSpec turns the offline fixes on or off and tunes them.
type FixSpec struct {
	Enabled bool `json:"enabled"`
	fix.Options
}

// BootTestSpec turns the boot test on or off and tunes it.
type BootTestSpec struct {
	Enabled bool `json:"enabled"`
	validate.Options
}

// The source kinds' specs live with the sources (engine/source); these
// names keep the facade's callers off that package.
type (
	SourceSpec  = source.Spec
	URLSpec     = source.URL
	VSphereSpec = source.VSphere
	ESXiSpec    = source.ESXi
)

// OutputSpec names the output image.
type OutputSpec struct {
	Path        string `json:"path"`
	Format      string `json:"format"`
	Compression bool   `json:"compression"`
	Overwrite   bool   `json:"overwrite"`
}

// StagePlan says whether a stage will run, and why.
type StagePlan struct {
	Name   StageName `json:"name"`
	Run    bool      `json:"run"`
	Reason string    `json:"reason"`
}

// SourcePlan is what the source was found to be.
type SourcePlan struct {
	Kind        string         `json:"kind"`
	Path        string         `json:"path"`
	Format      string         `json:"format"`
	Subformat   string         `json:"subformat,omitempty"`
	VirtualSize int64          `json:"virtual_size"`
	Fingerprint string         `json:"fingerprint"`
	Chain       []*chain.Layer `json:"chain"`
	// OVF is the archive's descriptor, for an OVA source: the VM's CPUs,
	// memory, firmware and NICs.
	OVF *ovf.OVF `json:"ovf,omitempty"`
	// Deferred is set when a remote source was planned from its metadata
	// alone: format, chain and sizes are learnt at apply, after FETCH.
	Deferred bool `json:"deferred,omitempty"`
	// RemoteSize is a remote source's length, from the server.
	RemoteSize int64 `json:"remote_size,omitempty"`
}

// ChainPaths lists the chain's layers, newest first.
func (s SourcePlan) ChainPaths() []string {
	out := make([]string, len(s.Chain))
	for i, l := range s.Chain {
		out[i] = l.Path
	}
	return out
}

// OutputPlan is what will be written.
type OutputPlan struct {
	Path        string `json:"path"`
	Format      string `json:"format"`
	Compression bool   `json:"compression"`
	// EstimatedSize is the expected size of the output file. For raw it is
	// exact (the virtual size; the file is sparse). For qcow2 it is an upper
	// bound from qemu-img measure; see docs/plan.md for the bound.
	EstimatedSize int64 `json:"estimated_size"`
	// RequiredSpace is the free space the conversion needs.
	RequiredSpace int64 `json:"required_space"`
	// FixAllowance is the part of the estimate kept for what the fixes
	// write into the guest (FixAllowance bytes when they run).
	FixAllowance int64 `json:"fix_allowance,omitempty"`
	// fullyAllocated caps the estimate: a qcow2 never exceeds it.
	fullyAllocated, baseEstimate int64
	// Replaces is set when an existing file will be overwritten.
	Replaces bool `json:"replaces"`
}

// FixAllowance is what the estimate adds when the fixes run: a regenerated
// initramfs per kernel (tens of MiB each) and the edited files.
const FixAllowance int64 = 256 << 20

// Plan is the engine's decision: everything Apply will do, made before a
// byte moves. It is plain data and round-trips through JSON.
type Plan struct {
	FormatVersion int         `json:"format_version"`
	Request       Request     `json:"request"`
	Source        SourcePlan  `json:"source"`
	Output        OutputPlan  `json:"output"`
	Stages        []StagePlan `json:"stages"`
	// Guest is the plan-time inspection and the fixes' dry run; nil when
	// no stage needs the guest.
	Guest    *GuestPlan `json:"guest,omitempty"`
	Warnings []string   `json:"warnings"`
}

// Firmware is the guest's firmware as inspected at plan time, or "".
func (p *Plan) Firmware() string {
	if p.Guest == nil || p.Guest.Guest == nil {
		return ""
	}
	return p.Guest.Guest.Firmware
}

// Stage returns the plan for one stage.
func (p *Plan) Stage(n StageName) StagePlan {
	for _, s := range p.Stages {
		if s.Name == n {
			return s
		}
	}
	return StagePlan{Name: n}
}

// RunningStages lists the stages that will run.
func (p *Plan) RunningStages() []string {
	var out []string
	for _, s := range p.Stages {
		if s.Run {
			out = append(out, string(s.Name))
		}
	}
	return out
}

// JSON renders the plan for review.
func (p *Plan) JSON() ([]byte, error) { return json.MarshalIndent(p, "", "  ") }

// ParsePlan reads a plan written by JSON.
func ParsePlan(b []byte) (*Plan, error) {
	var p Plan
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, err
	}
	return &p, nil
}
