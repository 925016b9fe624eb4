package engine

import (
	"path/filepath"
	"slices"

	"github.com/vmconv/terraform-provider-vmconv/engine/boottest"
	"github.com/vmconv/terraform-provider-vmconv/engine/diskformat"
	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/engine/fingerprint"
	"github.com/vmconv/terraform-provider-vmconv/engine/fix"
	"github.com/vmconv/terraform-provider-vmconv/engine/guest"
	"github.com/vmconv/terraform-provider-vmconv/engine/source"
	"github.com/vmconv/terraform-provider-vmconv/engine/vsphere"
)

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

// BootTestSpec turns the boot test on and tunes it.
type BootTestSpec = boottest.Spec

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
	Path string `json:"path,omitempty"`
	// Dir receives a whole VM: one image per disk and the report,
	// published together.
	Dir         string `json:"dir,omitempty"`
	Format      string `json:"format"`
	Compression bool   `json:"compression"`
	Overwrite   bool   `json:"overwrite"`
	// Pool and Volume publish the image as a volume of a storage pool on
	// the engine's libvirt host instead of a file at Path: the engine then
	// converts into a private staging folder and uploads (engine/volume).
	Pool   string `json:"pool,omitempty"`
	Volume string `json:"volume,omitempty"`
	// VM marks a whole VM published into Pool: one volume per disk, named
	// "<Volume>-disk<N>.<format>" (Volume defaults to the VM's name), and
	// one report for the set, "<Volume>.vmconv.json".
	VM bool `json:"vm,omitempty"`
}

func normalize(req Request) (Request, error) {
	src, err := req.Source.Normalize()
	if err != nil {
		return req, err
	}
	req.Source = src
	switch {
	case req.Output.Path == "" && req.Output.Dir == "":
		return req, fault.New(fault.InvalidRequest, "", "no output path is set").WithHint("Set output.path (a disk) or output.dir (a whole VM).")
	case req.Output.Path != "" && req.Output.Dir != "":
		return req, fault.New(fault.InvalidRequest, req.Output.Path, "both output.path and output.dir are set").
			WithHint("A disk conversion writes output.path; a whole VM writes one image per disk into output.dir.")
	case req.Output.Dir != "":
		abs, err := filepath.Abs(req.Output.Dir)
		if err != nil {
			return req, fault.Wrap(fault.InvalidRequest, req.Output.Dir, err, "invalid output folder")
		}
		req.Output.Dir = abs
	default:
		abs, err := filepath.Abs(req.Output.Path)
		if err != nil {
			return req, fault.Wrap(fault.InvalidRequest, req.Output.Path, err, "invalid output path")
		}
		req.Output.Path = abs
	}
	if req.Output.Format == "" {
		req.Output.Format = string(diskformat.QCOW2)
	}
	if !slices.Contains(diskformat.Outputs, diskformat.Format(req.Output.Format)) {
		return req, fault.New(fault.InvalidRequest, req.Output.Path, "output format %q is not supported", req.Output.Format).
			WithHint("Use one of: qcow2, raw, vdi, vhdx.")
	}
	if req.Output.Compression && req.Output.Format != "qcow2" {
		return req, fault.New(fault.InvalidRequest, req.Output.Path, "compression is only available for qcow2 output").
			WithHint("Set output.compression = false or output.format = \"qcow2\".")
	}
	if req.Source.Format != "" && !slices.Contains(diskformat.Inputs, diskformat.Format(req.Source.Format)) {
		return req, fault.New(fault.InvalidRequest, req.Source.Path, "source format %q is not supported", req.Source.Format)
	}
	if err := req.Fixes.Options.Validate(); err != nil {
		return req, err
	}
	return req, nil
}

// Types of the engine's subpackages that callers hold, under the facade's
// names, so that a caller (the provider) needs no package but this one.
type (
	GuestInfo       = guest.Info
	GuestChange     = guest.Change
	FixOptions      = fix.Options
	FixResult       = fix.Result
	BootTestOptions = boottest.Options
	BootResult      = boottest.Result
	Stamp           = fingerprint.Stamp
	VSphereVM       = vsphere.VM
)

// MaxListedDisks is how many disks a VM given disk by disk may have.
const MaxListedDisks = source.MaxListedDisks

// FixNames lists every fix, as fixes.disabled takes them.
func FixNames() []string { return fix.Names() }

// FstabModes lists the values of fixes.fstab_mode.
func FstabModes() []string {
	return []string{fix.FstabStabilizeAll, fix.FstabByPathOnly, fix.FstabNone}
}

// DefaultFstabMode is the fstab mode of a request that sets none.
const DefaultFstabMode = fix.FstabStabilizeAll

// FixSummary names a fix and says what it does, for documentation.
type FixSummary struct{ Name, Summary string }

// LinuxFixes lists the Linux guests' fixes in the order they run.
func LinuxFixes() []FixSummary {
	var out []FixSummary
	for _, f := range fix.All() {
		out = append(out, FixSummary{Name: f.Name(), Summary: f.Summary()})
	}
	return out
}

// InputFormats lists the formats vmconv reads; OutputFormats those it writes.
func InputFormats() []string  { return formatNames(diskformat.Inputs) }
func OutputFormats() []string { return formatNames(diskformat.Outputs) }

func formatNames(fs []diskformat.Format) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = string(f)
	}
	return out
}
