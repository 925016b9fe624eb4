package provider

import (
	"context"

	"github.com/hashicorp/terraform-plugin-framework-validators/objectvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/listplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/objectplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/vmconv/terraform-provider-vmconv/engine"
	"github.com/vmconv/terraform-provider-vmconv/internal/provider/validators"
)

// vmDiskFields describe one converted disk of a VM (disks).
var vmDiskFields = []field{
	{"device", types.StringType, "The slot the VM attaches the disk to, as the source names it (`scsi0:1`)."},
	{"path", types.StringType, "The converted image, in `output.dir`: `<vm>-disk<i>.<format>`, `<vm>` being the `.vmx`'s name and `<i>` the disk's place in the VM's order. For `output.pool`, the volume's file on the libvirt host."},
	{"pool", types.StringType, "For `output.pool`: the pool holding the disk's volume (null for `output.dir`)."},
	{"volume", types.StringType, "For `output.pool`: the disk's volume, `<output.volume>-disk<i>.<format>`; what `vmconv_kvm_domain` takes as `disks[*].volume`."},
	{"format", types.StringType, "The image's format (`output.format`)."},
	{"source_path", types.StringType, "The disk's newest source file, which the `.vmx` names."},
	{"chain", stringList, "The files of the disk's snapshot chain, newest first."},
	{"virtual_size", types.Int64Type, "The guest-visible disk size in bytes."},
	{"estimated_size", types.Int64Type, "The image's size estimated at plan time (`qemu-img measure`; exact for `raw`)."},
	{"size", types.Int64Type, "The image's size in bytes, known after apply."},
	{"sha256", types.StringType, "SHA-256 of the image, computed once when it is written."},
}

// vmNICFields describe a network adapter of the source VM.
var vmNICFields = []field{
	{"mac", types.StringType, "Its MAC address (`ethernetN.address`, or the generated one)."},
	{"model", types.StringType, "Its virtual device (`vmxnet3`, `e1000e`...)."},
	{"network", types.StringType, "The network it was connected to, as the source names it."},
}

// vmHardwareFields describe the source VM's shape; nics is added to them.
var vmHardwareFields = []field{
	{"vcpus", types.Int64Type, "Virtual CPUs (`numvcpus`)."},
	{"memory_mib", types.Int64Type, "Memory in MiB (`memSize`)."},
	{"firmware", types.StringType, "`bios` or `uefi`."},
	{"guest_os", types.StringType, "The guest OS the source declares (`guestOS`), such as `debian12-64`."},
	{"skipped", stringList, "Devices left out of the conversion (CD-ROMs, absent disks)."},
}

var (
	vmDiskAttrTypes = attrTypes(vmDiskFields)
	vmNICAttrTypes  = attrTypes(vmNICFields)
	vmHardwareTypes = func() map[string]attr.Type {
		t := attrTypes(vmHardwareFields)
		t["nics"] = types.ListType{ElemType: types.ObjectType{AttrTypes: vmNICAttrTypes}}
		return t
	}()
)

func (r *vmConversionResource) Schema(ctx context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "Converts a whole VM: every disk of a VMware VM folder into a KVM-ready image, inspected, fixed and boot-tested as one guest with all its disks attached, " +
			"and its hardware (vCPUs, memory, firmware, NICs and their MACs) read for `vmconv_kvm_domain`. The plan shows each disk, its image and estimated size, " +
			"and the hardware. The images and the report are published together into `output.dir`: a failed or interrupted apply leaves none of them, or the whole previous set. " +
			"The source is never modified. Read detects an image that was deleted or changed outside Terraform, so the next plan converts the VM again.",
		// Settings are blocks, so that a misspelt one fails the plan
		// (see sourceKind).
		Blocks: map[string]schema.Block{
			"source":    vmSourceBlock("The VM to convert (required). It is opened read-only and never modified."),
			"output":    vmOutputBlock(),
			"fixes":     fixesBlock(),
			"inspect":   inspectBlock(),
			"boot_test": vmBootTestBlock(),
			"timeouts":  timeoutsBlock(ctx),
		},
		Attributes: map[string]schema.Attribute{
			// Computed: plan-time previews, known after terraform plan,
			// before a byte moves.
			"disks": schema.ListNestedAttribute{
				Computed: true,
				MarkdownDescription: "The VM's disks in the order it attaches them, one image each: what the plan found (device, source chain, sizes, the image's path) " +
					"and, after apply, the image's size and checksum. Give them to `vmconv_kvm_domain` in this order.",
				PlanModifiers: []planmodifier.List{listplanmodifier.UseStateForUnknown()},
				NestedObject:  schema.NestedAttributeObject{Attributes: computedAttributes(vmDiskFields)},
			},
			"hardware": vmHardwareAttribute(),
			"estimated_output_size": schema.Int64Attribute{
				Computed: true,
				MarkdownDescription: "The images' sizes estimated at plan time, summed, plus, when fixes will write into the guest, one 256 MiB allowance for what they write: " +
					"an upper bound the folder does not exceed.",
				PlanModifiers: []planmodifier.Int64{int64planmodifier.UseStateForUnknown()},
			},
			"planned_stages": schema.ListAttribute{
				Computed: true, ElementType: types.StringType,
				MarkdownDescription: "The pipeline stages that will run, in order, each with its reason (`stage: reason`).",
				PlanModifiers:       []planmodifier.List{listplanmodifier.UseStateForUnknown()},
			},
			"planned_fixes": plannedFixesAttribute("The changes the fixes will make, from one plan-time inspection of the guest with every disk attached and a dry run of the fixes " +
				"(null when the plan did not inspect: provider `plan_inspection = false`, or fixes and boot test off). `fixes_applied` records what apply then did."),
			"plan_warnings": schema.ListAttribute{
				Computed: true, ElementType: types.StringType,
				MarkdownDescription: "Warnings found at plan time (the chains, the guest, the fixes' dry run).",
				PlanModifiers:       []planmodifier.List{listplanmodifier.UseStateForUnknown()},
			},
			// Computed
			"id": schema.StringAttribute{
				Computed: true, MarkdownDescription: "The absolute output folder.",
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"source_fingerprint": schema.StringAttribute{
				Computed: true,
				MarkdownDescription: "A cheap fingerprint of every disk's chain: each file's size, modification time and sampled content. " +
					"When it changes (a new snapshot layer, a modified extent of any disk), the plan converts the VM again.",
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"report_path": schema.StringAttribute{
				Computed: true,
				MarkdownDescription: "Path of the JSON report inside `output.dir` (`" + engine.VMReportName + "`): the plan that was applied with every disk and the hardware, " +
					"what each stage did, every change with its content before and after, and the boot test.",
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"fixes_applied":    fixesAppliedAttribute("Every change the fixes made to the guest, on whichever disk (in a dry run: would make), in order. The report holds each file's content before and after."),
			"boot_test_result": bootTestResultAttribute("The outcome of the boot test, with every disk attached."),
			"guest":            guestAttribute("What inspection found in the guest across all its disks (null when neither fixes nor boot test ran)."),
			"warm":             warmAttribute(),
		},
	}
}

// vmOutputBlock is a disk conversion's output with a folder, dir, in
// place of the image's path: the same formats, defaults and replacement.
func vmOutputBlock() schema.SingleNestedBlock {
	a := outputBlock()
	attrs := make(map[string]schema.Attribute, len(a.Attributes))
	for name, v := range a.Attributes {
		if name != "path" && name != "volume" {
			attrs[name] = v
		}
	}
	pool := attrs["pool"].(schema.StringAttribute)
	pool.MarkdownDescription = "A storage pool on the provider's libvirt host (`uri`) to publish the VM into: one volume per disk, `<volume>-disk<i>.<format>`, " +
		"the set's report `<volume>" + engine.VolumeReportSuffix + "` and its Markdown summary `<volume>" + engine.VolumeMarkdownSuffix + "`. All are uploaded under temporary names before any takes its final name. Set `dir`, or `pool`."
	pool.Validators = []validator.String{stringvalidator.LengthAtLeast(1)}
	attrs["pool"] = pool
	attrs["volume"] = schema.StringAttribute{
		Optional:            true,
		MarkdownDescription: "With `pool`: the prefix of the VM's volume names. Default: the VM's name (the `.vmx`'s, the OVF's, the vSphere VM's; `vm` for a `disks` list).",
		Validators: []validator.String{stringvalidator.LengthAtLeast(1),
			stringvalidator.AlsoRequires(path.MatchRelative().AtParent().AtName("pool"))},
		PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()},
	}
	attrs["dir"] = schema.StringAttribute{
		Optional: true,
		MarkdownDescription: "The folder the VM is written to: one image per disk and the report `" + engine.VMReportName + "`, published together. " +
			"vmconv creates it; its parent must exist. It must be new or empty (or this resource's own), and no file of the source.",
		Validators:    []validator.String{stringvalidator.LengthAtLeast(1)},
		PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()},
	}
	overwrite := attrs["overwrite"].(schema.BoolAttribute)
	overwrite.MarkdownDescription = "Replace a folder of vmconv's that this resource did not create. Default `false`. " +
		"A folder holding anything vmconv did not write is never replaced, nor a file of the source."
	attrs["overwrite"] = overwrite
	a.Attributes = attrs
	a.Validators = []validator.Object{objectvalidator.IsRequired(), validators.ExactlyOneOf("dir", "pool")}
	a.MarkdownDescription = "Where the VM's images go (required). They appear together: a failed or interrupted apply leaves `dir` as it was."
	return a
}

// vmBootTestAttribute is a disk conversion's boot_test, run with every
// disk of the VM attached; as there, a change runs it again on the
// published VM.
func vmBootTestBlock() schema.SingleNestedBlock {
	a := bootTestBlock()
	a.MarkdownDescription = "Boot the converted VM under QEMU before publishing it, with every disk attached on `disk_bus`, on throwaway overlays, so the test never changes the images. " +
		"The test adds a serial console and a marker unit to the overlay; it passes when the marker reports the guest at multi-user with an IPv4 address. " +
		"Without the block, the test runs with its defaults. " +
		"Changing these settings boots the published VM again with them (an update in place; the images are kept) and records the result in the report. Skipped for a VM without an operating system."
	return a
}

// vmHardwareAttribute is the source VM's shape, known at plan time.
func vmHardwareAttribute() schema.Attribute {
	attrs := computedAttributes(vmHardwareFields)
	attrs["nics"] = schema.ListNestedAttribute{
		Computed: true, MarkdownDescription: "The network adapters, in the VM's order.",
		NestedObject: schema.NestedAttributeObject{Attributes: computedAttributes(vmNICFields)},
	}
	return schema.SingleNestedAttribute{
		Computed: true,
		MarkdownDescription: "The source VM's hardware as its `.vmx` describes it, known at plan time, for `vmconv_kvm_domain` (`vcpus`, `memory`, `firmware`, " +
			"and the NICs' `mac`s so DHCP reservations and MAC-bound licences survive). A change to it alone (say `memSize`) updates it in place; the images are kept.",
		PlanModifiers: []planmodifier.Object{objectplanmodifier.UseStateForUnknown()},
		Attributes:    attrs,
	}
}
