package provider

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/vmconv/terraform-provider-vmconv/engine"
	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
)

// summaries holds every diagnostic summary the provider emits for engine
// faults, so the wording lives in one place.
var summaries = map[fault.Code]string{
	fault.Internal:              "Unexpected Conversion Error",
	fault.SourceMissing:         "Source Disk Not Found",
	fault.SourceUnreadable:      "Source Disk Not Readable",
	fault.UnknownFormat:         "Unknown Disk Format",
	fault.UnsupportedFormat:     "Unsupported Disk Format",
	fault.CorruptImage:          "Source Disk Is Corrupt",
	fault.TruncatedImage:        "Source Disk Is Truncated",
	fault.CorruptDescriptor:     "VMDK Descriptor Is Invalid",
	fault.ChainParentMissing:    "Snapshot Chain Is Broken",
	fault.ChainLoop:             "Snapshot Chain Loops",
	fault.ChainCIDMismatch:      "Snapshot Does Not Match Its Parent",
	fault.PathOutsideSource:     "Disk References A File Outside The Source Folder",
	fault.SourceChanged:         "Source Disk Changed After Plan",
	fault.OutputDirMissing:      "Output Folder Does Not Exist",
	fault.OutputIsSource:        "Output Path Would Overwrite The Source",
	fault.OutputExists:          "Output File Already Exists",
	fault.PoolMissing:           "Storage Pool Not Usable",
	fault.OutputLocked:          "Output Path Is Being Written By Another Conversion",
	fault.OutputNotWritable:     "Output Path Not Writable",
	fault.NoSpace:               "Not Enough Free Space For The Output",
	fault.ToolMissing:           "Required Tool Not Installed",
	fault.ToolFailed:            "Conversion Tool Failed",
	fault.Cancelled:             "Conversion Cancelled",
	fault.InvalidRequest:        "Invalid Conversion Request",
	fault.NoOperatingSystem:     "No Operating System Found",
	fault.MultipleOSes:          "More Than One Operating System Found",
	fault.EncryptedGuest:        "Guest Disk Is Encrypted",
	fault.InspectionFailed:      "Guest Inspection Failed",
	fault.FixFailed:             "Guest Fix Failed",
	fault.BootTestFailed:        "Boot Test Failed",
	fault.GuestUnsupported:      "Guest Not Supported",
	fault.DriversMissing:        "VirtIO Drivers Not Available",
	fault.BitLocker:             "Guest Volume Is BitLocker Encrypted",
	fault.HypervisorFailed:      "Hypervisor Operation Failed",
	fault.HypervisorUnreachable: "Libvirt Not Reachable",
	fault.DomainExists:          "Domain Name Already Taken",
	fault.BootPhases:            "Boot Phases Not Possible",
	fault.FirmwareMissing:       "Firmware Not Installed",
	fault.FetchFailed:           "Source Download Failed",
	fault.ChecksumMismatch:      "Source Checksum Mismatch",
	fault.HostKeyMismatch:       "Server Identity Not Trusted",
	fault.AuthFailed:            "Authentication Failed",
	fault.HostileArchive:        "Archive Rejected As Unsafe",
	fault.DiskInUse:             "Disk Is In Use By A Domain",
	fault.RemoteNotFound:        "Remote Object Not Found",
	fault.DiskUnreachable:       "Domain Disk Not Reachable By QEMU",
	fault.BootTestImpossible:    "Boot Test Cannot Succeed",
	fault.OlderSnapshot:         "Source Is Not The Newest Snapshot",
}

// summaryFor returns the Title Case summary for a fault code.
func summaryFor(c fault.Code) string {
	if s, ok := summaries[c]; ok {
		return s
	}
	return summaries[fault.Internal]
}

// detailFor renders a fault as a diagnostic detail: what was attempted,
// the facts, and what to do.
func detailFor(attempt string, err error) string {
	var b strings.Builder
	fe, ok := fault.As(err)
	if !ok {
		fmt.Fprintf(&b, "%s failed.\n\nError: %v", attempt, err)
		return b.String()
	}
	fmt.Fprintf(&b, "%s failed: %s.\n", attempt, strings.TrimSuffix(fe.Msg, "."))
	facts := []fault.Fact{}
	if fe.File != "" {
		facts = append(facts, fault.Fact{Label: subjectLabel(fe.File), Value: fe.File})
	}
	if fe.Stage != "" {
		facts = append(facts, fault.Fact{Label: "Stage", Value: strings.ToUpper(fe.Stage)})
	}
	facts = append(facts, fe.Facts...)
	if fe.Err != nil {
		facts = append(facts, fault.Fact{Label: "Error", Value: fe.Err.Error()})
	}
	if len(facts) > 0 {
		b.WriteString("\n")
		for _, f := range facts {
			fmt.Fprintf(&b, "%s: %s\n", f.Label, f.Value)
		}
	}
	if fe.Hint != "" {
		fmt.Fprintf(&b, "\n%s", fe.Hint)
	}
	return strings.TrimRight(b.String(), "\n")
}

// subjectLabel names what a fault is about: a fault's subject is a file
// most often, but may be a URL, a libvirt URI or a file on a remote host
// (host:/path).
func subjectLabel(v string) string {
	switch {
	case strings.HasPrefix(v, "qemu") && strings.Contains(v, "://"):
		return "URI"
	case strings.Contains(v, "://"):
		return "URL"
	case !strings.HasPrefix(v, "/") && strings.Contains(v, ":/"):
		return "Source"
	}
	return "File"
}

// addFault appends an engine failure as an error diagnostic.
func addFault(diags *diag.Diagnostics, attempt string, err error) {
	diags.AddError(summaryFor(fault.CodeOf(err)), detailFor(attempt, err))
}

// addFaultAt appends an engine failure as an error on an attribute.
func addFaultAt(diags *diag.Diagnostics, p path.Path, attempt string, err error) {
	diags.AddAttributeError(p, summaryFor(fault.CodeOf(err)), detailFor(attempt, err))
}

const (
	summaryUnconfigured      = "Provider Not Configured"
	summaryOutputDrift       = "Output Changed Outside Terraform"
	summarySourceChangedPlan = "Source Disk Changed Since It Was Last Planned"
	summarySourceUnavailable = "Source Disk No Longer Available"
	summaryImport            = "Cannot Import Output"
	summaryOutputMaybeOwned  = "Output File Exists"
	summaryBootTestNoNetwork = "Boot Test Will Not Check The Network"
	summaryBootTestNotRun    = "Boot Test Not Run"
)

// bootTestNotRunDetail explains a boot test turned on after the
// conversion that had nothing to boot.
const bootTestNotRunDetail = "The boot test settings were saved, but nothing was booted: the report of the conversion records no operating system. " +
	"Either the images hold none (a data disk), or they were converted with fixes and boot_test both off, so the guest was never inspected. " +
	"To convert and boot-test the guest, replace the conversion (terraform apply -replace=<address>)."

// bootTestNoNetworkDetail explains a domain boot test that does not wait
// for the network because the domain has no network interface.
const bootTestNoNetworkDetail = "The domain has no network interface, so its boot test waits for the guest to reach multi-user " +
	"and does not require a network address, as with boot_test { require_network = false }. " +
	"Add a network_interfaces block to test the network as well; boot_test { require_network = true } on a domain without one fails the plan."

func unconfiguredDetail(what string) string {
	return fmt.Sprintf("The vmconv provider was not configured before %s. This is a bug in the provider or in Terraform; please report it.", what)
}

// Aliases keep helper signatures short.
type (
	diagDiagnostic  = diag.Diagnostic
	diagDiagnostics = diag.Diagnostics
)

const summaryOutputAdopted = "Output Of An Interrupted Apply Adopted"

// adoptedDetail explains an output Create took over instead of converting.
func adoptedDetail(path, created string) string {
	return fmt.Sprintf("An earlier apply of this conversion published %s (at %s) and was interrupted before Terraform recorded it. "+
		"Its report records this very conversion (the same source content and settings) and the file is unchanged since, "+
		"so it was adopted as it is instead of being converted again.", path, created)
}

// Summaries of vmconv_vm_conversion's own diagnostics.
const (
	summaryVMSourceUnavailable = "Source VM No Longer Available"
	summaryVMSourceChangedPlan = "Source VM Changed Since It Was Last Planned"
	// summaryVMSourceChangedAfterPlan refuses a stale plan (stalePlan).
	summaryVMSourceChangedAfterPlan = "Source VM Changed After Plan"
	summaryVMSourceChanged          = "Source VM Changed"
	summaryCannotCheckOutput        = "Cannot Check Output"
	// summaryOutputFolderKept is a destroy that found the output folder
	// holding what vmconv did not write, and kept it.
	summaryOutputFolderKept = "Output Folder Not Deleted"
)

// sourceWords are how a resource speaks of its source when it changed.
type sourceWords struct {
	what                    string // "source disk", "source VM"
	staleSummary, summary   string
	changedSinceLastPlanned func(last *engine.PlanRecord, p *engine.Plan) string
}

// checkLastPlan compares the source with the last plan of the same output
// and records this plan (changes: it changes an existing conversion). A
// stale plan is refused, and checkLastPlan returns false; a source changed
// since a plan that changed nothing is a warning.
func checkLastPlan(ctx context.Context, e *engine.Engine, p *engine.Plan, stateFingerprint *string, changes bool, w sourceWords, diags *diag.Diagnostics) bool {
	if last, ok := e.LastPlanned(p.Output.Path); ok && last.Fingerprint != p.Source.Fingerprint {
		switch {
		case stalePlan(stateFingerprint, last, p):
			// Most likely the final plan of a saved plan (or of one under
			// review): Terraform would call the new values a provider bug.
			recordPlan(ctx, e, p, changes)
			diags.AddAttributeError(path.Root("source"), w.staleSummary, staleDetail(w.what, last, p))
			return false
		case stateFingerprint == nil || last.Fingerprint != *stateFingerprint:
			diags.AddAttributeWarning(path.Root("source"), w.summary, w.changedSinceLastPlanned(last, p))
		}
	}
	recordPlan(ctx, e, p, changes)
	return true
}

// stalePlan tells whether a plan finds the source changed since the last
// plan of the same source and output, when that plan creates or changes
// the conversion: the apply of a saved plan (Terraform plans again just before it applies)
// or a plan made after one that was reviewed. No signal in Terraform's
// protocol tells the two apart, and both describe a migration that will
// not happen as reviewed, so both are refused; the plan is recorded
// first, so the next plan proceeds.
func stalePlan(stateFingerprint *string, last *engine.PlanRecord, p *engine.Plan) bool {
	if last.Source == "" || last.Source != p.Source.Path || last.Fingerprint == p.Source.Fingerprint {
		return false
	}
	if stateFingerprint == nil {
		return true // a conversion still to be created
	}
	// A change of an existing conversion (an update in place, a
	// replacement) planned against the source in state, which has changed
	// since: the final plan would now replace it for another reason.
	return last.Changes && last.Fingerprint == *stateFingerprint
}

// staleDetail explains a refused stale plan, naming the files that changed.
func staleDetail(what string, last *engine.PlanRecord, p *engine.Plan) string {
	return fmt.Sprintf("The %s changed after this conversion was last planned (%s), so that plan no longer describes what apply would do. "+
		"If you are applying a saved plan, it is refused here; Terraform would otherwise reject it as an inconsistent final plan. "+
		"Run terraform plan again and review the new plan: it records the source as it is now, and proceeds.\n\n%sPlanned fingerprint: %s\nCurrent fingerprint: %s",
		what, last.At.Format(time.RFC3339), changedFilesFacts(engine.ChangedFiles(last.Files, p.Source.Files)), last.Fingerprint, p.Source.Fingerprint)
}

// changedFilesFacts lists the files that changed as "Changed file:" lines,
// or nothing when the source is fingerprinted as a whole.
func changedFilesFacts(changes []string) string {
	var b strings.Builder
	for _, c := range changes {
		fmt.Fprintf(&b, "Changed file: %s\n", c)
	}
	return b.String()
}

// appliedPlan marks the plan of req's output as applied, once an update
// made its change.
func appliedPlan(ctx context.Context, e *engine.Engine, req engine.Request) {
	if err := e.AppliedPlanned(req); err != nil {
		tflog.Warn(ctx, "cannot mark the plan as applied", map[string]any{"error": err.Error()})
	}
}

// recordPlan remembers this plan's source for the next plan's comparison;
// changes tells whether the plan changes an existing conversion.
func recordPlan(ctx context.Context, e *engine.Engine, p *engine.Plan, changes bool) {
	if err := e.RecordPlanned(p, changes); err != nil {
		tflog.Warn(ctx, "cannot record the plan", map[string]any{"error": err.Error()})
	}
}
