package engine

import (
	"encoding/json"

	"github.com/vmconv/terraform-provider-vmconv/engine/chain"
	"github.com/vmconv/terraform-provider-vmconv/engine/fix"
	"github.com/vmconv/terraform-provider-vmconv/engine/ovf"
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

// SourceSpec names the source disk.
type SourceSpec struct {
	// Path is the newest file of a local disk (a snapshot chain's head).
	Path string `json:"path,omitempty"`
	// Format declares the format instead of detecting it (for raw disks
	// without a partition table); it must not contradict the content.
	Format string `json:"format,omitempty"`
	// AllowParentCIDMismatch accepts snapshots whose parentCID does not
	// match the parent's CID.
	AllowParentCIDMismatch bool `json:"allow_parent_cid_mismatch,omitempty"`
	// OVA is a local OVA archive to take the disk from, instead of Path.
	OVA string `json:"ova,omitempty"`
	// OVADisk is which of the OVF's disks (in its order), from 0.
	OVADisk int `json:"ova_disk,omitempty"`
	// OVAURL is an OVA on an HTTP(S) server, downloaded (resumably) into
	// the cache before it is extracted like a local one.
	OVAURL *URLSpec `json:"ova_url,omitempty"`
	// URL is a disk file on an HTTP(S) server, instead of Path.
	URL *URLSpec `json:"url,omitempty"`
	// VSphere is a VM's disk in vCenter or ESXi, instead of Path.
	VSphere *VSphereSpec `json:"vsphere,omitempty"`
	// ESXi is a disk on an ESXi host's datastore, copied over SSH.
	ESXi *ESXiSpec `json:"esxi_ssh,omitempty"`
}

// ESXiSpec is a VMDK on an ESXi host, read over SSH (SFTP). The private key
// is not serialized.
type ESXiSpec struct {
	Host       string `json:"host"`
	User       string `json:"user"`
	PrivateKey string `json:"-"`
	HostKey    string `json:"host_key"`
	// Path is "[datastore] folder/file.vmdk" or an absolute path.
	Path string `json:"path"`
}

// VSphereSpec is a VM's disk in vCenter or ESXi. The credentials are not
// serialized.
type VSphereSpec struct {
	URL        string `json:"url"`
	Datacenter string `json:"datacenter,omitempty"`
	VM         string `json:"vm"`
	Disk       int    `json:"disk"`
	// Snapshot takes a snapshot for a consistent read and removes it.
	Snapshot   bool   `json:"snapshot"`
	Thumbprint string `json:"thumbprint,omitempty"`
	Insecure   bool   `json:"insecure,omitempty"`
	Username   string `json:"-"`
	Password   string `json:"-"`
}

// URLSpec is an HTTP(S) source. Href is only ever shown redacted; header
// values never leave the process (they are not serialized).
type URLSpec struct {
	Href    string            `json:"-"`
	SHA256  string            `json:"sha256,omitempty"`
	Headers map[string]string `json:"-"`
	// Shown is Href without user info or query, for plans and reports.
	Shown string `json:"href"`
}

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
