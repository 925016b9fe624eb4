package provider

import (
	"context"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-validators/int64validator"
	"github.com/hashicorp/terraform-plugin-framework-validators/objectvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/setvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/booldefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/boolplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/listplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/vmconv/terraform-provider-vmconv/engine"
	"github.com/vmconv/terraform-provider-vmconv/internal/provider/validators"
)

func (r *diskConversionResource) Schema(ctx context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "Converts a VM disk (VMDK snapshot chains included, and VHD, VHDX, VDI, qcow2 or raw) into a KVM-ready image. " +
			"The plan shows the detected format, the snapshot chain, the sizes and the stages that will run; the apply writes the output atomically " +
			"and never modifies the source. Read detects an output that was deleted or changed outside Terraform, so the next plan recreates it.",
		// Settings are blocks, so that a misspelt one fails the plan
		// (see sourceKind).
		Blocks: map[string]schema.Block{
			"source":    sourceBlock("The disk to convert (required). It is opened read-only and never modified."),
			"output":    outputBlock(),
			"fixes":     fixesBlock(),
			"inspect":   inspectBlock(),
			"boot_test": bootTestBlock(),
			"timeouts":  timeoutsBlock(ctx),
		},
		Attributes: map[string]schema.Attribute{
			"plan_path": schema.StringAttribute{
				Optional: true,
				MarkdownDescription: "Write the engine's plan here as JSON at every plan that computes it (and again at apply), for review in CI: " +
					"the source and its chain, the output estimate, the stages, the inspected guest and the fixes' dry run. " +
					"A path ending in `.md` gets the same as Markdown, short enough to post on a pull request. Changing it does not touch the output.",
			},
			// Computed: plan-time previews, known after terraform plan,
			// before a byte moves.
			"estimated_output_size": schema.Int64Attribute{
				Computed: true,
				MarkdownDescription: "The output's size estimated at plan time: exact for `raw` (its virtual size; the file is sparse), and for `qcow2` the " +
					"`qemu-img measure` of the source plus, when fixes will write into the guest, a fixed 256 MiB allowance for what they write " +
					"(a regenerated initramfs above all): an upper bound the output does not exceed (compressed outputs are smaller still).",
				PlanModifiers: []planmodifier.Int64{int64planmodifier.UseStateForUnknown()},
			},
			"planned_stages": schema.ListAttribute{
				Computed: true, ElementType: types.StringType,
				MarkdownDescription: "The pipeline stages that will run, in order, each with its reason (`stage: reason`).",
				PlanModifiers:       []planmodifier.List{listplanmodifier.UseStateForUnknown()},
			},
			"planned_fixes": plannedFixesAttribute("The changes the fixes will make, from the guest's plan-time inspection and a dry run of the fixes (null when the plan did not inspect: " +
				"provider `plan_inspection = false`, or fixes and boot test off). `fixes_applied` records what apply then did."),
			"planned_firmware": schema.StringAttribute{
				Computed: true, MarkdownDescription: "`bios` or `uefi`, as inspected at plan time (null when the plan did not inspect).",
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"plan_warnings": schema.ListAttribute{
				Computed: true, ElementType: types.StringType,
				MarkdownDescription: "Warnings found at plan time (the chain, the guest, the fixes' dry run).",
				PlanModifiers:       []planmodifier.List{listplanmodifier.UseStateForUnknown()},
			},
			// Computed
			"id": schema.StringAttribute{
				Computed: true, MarkdownDescription: "The absolute output path.",
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"source_format": schema.StringAttribute{
				Computed: true, MarkdownDescription: "The source format detected from its content (`vmdk`, `qcow2`, `vhd`, `vhdx`, `vdi` or `raw`).",
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"chain": schema.ListAttribute{
				Computed: true, ElementType: types.StringType,
				MarkdownDescription: "The files of the snapshot chain, newest first; one element for a disk without snapshots.",
				PlanModifiers:       []planmodifier.List{listplanmodifier.UseStateForUnknown()},
			},
			"virtual_size": schema.Int64Attribute{
				Computed: true, MarkdownDescription: "The guest-visible disk size in bytes.",
				PlanModifiers: []planmodifier.Int64{int64planmodifier.UseStateForUnknown()},
			},
			"output_size": schema.Int64Attribute{
				Computed: true, MarkdownDescription: "The output file's size in bytes (its apparent size; raw outputs are sparse).",
				PlanModifiers: []planmodifier.Int64{int64planmodifier.UseStateForUnknown()},
			},
			"output_sha256": schema.StringAttribute{
				Computed: true, MarkdownDescription: "SHA-256 of the output file, computed once when it is written.",
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"source_fingerprint": schema.StringAttribute{
				Computed: true,
				MarkdownDescription: "A cheap fingerprint of the source chain: each file's size, modification time and sampled content. " +
					"When it changes (a new snapshot layer, a modified extent), the plan replaces the output.",
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"report_path": schema.StringAttribute{
				Computed: true, MarkdownDescription: "Path of the JSON report written beside the output: the plan that was applied, what each stage did, every change with its content before and after, and the boot test.",
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"fixes_applied":    fixesAppliedAttribute("Every change the fixes made to the guest (in a dry run: would make), in order. The report holds each file's content before and after."),
			"boot_test_result": bootTestResultAttribute("The outcome of the last boot test."),
			"guest":            guestAttribute("What inspection found in the guest (null when neither fixes nor boot test ran)."),
		},
	}
}

func outputBlock() schema.SingleNestedBlock {
	outputs := engine.OutputFormats()
	return schema.SingleNestedBlock{
		Validators: []validator.Object{objectvalidator.IsRequired(), validators.ExactlyOneOf("path", "pool")},
		MarkdownDescription: "The image to write (required): a file at `path` on this machine, or a volume (`pool` and `volume`) on the provider's libvirt host (`uri`). " +
			"It appears atomically: a failed or interrupted apply leaves nothing at `path`, and no volume by that name.",
		Attributes: map[string]schema.Attribute{
			"path": schema.StringAttribute{
				Optional:            true,
				MarkdownDescription: "Path of the output image. Its folder must exist. It may not be, or link to, a file of the source. Set `path`, or `pool` and `volume`.",
				Validators:          []validator.String{stringvalidator.LengthAtLeast(1)},
				PlanModifiers:       []planmodifier.String{stringplanmodifier.RequiresReplace()},
			},
			"pool": schema.StringAttribute{
				Optional: true,
				MarkdownDescription: "A storage pool on the provider's libvirt host (`uri`, local or `qemu+ssh://`) to publish the image into, as `volume`. " +
					"The image is converted into a staging file in `cache_dir`, uploaded through libvirt with its holes kept, under a temporary name, " +
					"then made `volume` by the host; the staging file is deleted. The runner never needs to see the host's file system. " +
					"The pool must be active and of a kind whose volumes are files (`dir`, `fs`, `netfs`).",
				Validators: []validator.String{stringvalidator.LengthAtLeast(1),
					stringvalidator.AlsoRequires(path.MatchRelative().AtParent().AtName("volume"))},
				PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()},
			},
			"volume": schema.StringAttribute{
				Optional: true,
				MarkdownDescription: "The volume's name in `pool`, for example `db.qcow2`. Beside it vmconv keeps its report, `<volume>" + engine.VolumeReportSuffix + "`, " +
					"and the report's Markdown summary, `<volume>" + engine.VolumeMarkdownSuffix + "`, both also volumes.",
				Validators: []validator.String{stringvalidator.LengthAtLeast(1),
					stringvalidator.AlsoRequires(path.MatchRelative().AtParent().AtName("pool"))},
				PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()},
			},
			"format": schema.StringAttribute{
				Optional: true, Computed: true, Default: stringdefault.StaticString("qcow2"),
				MarkdownDescription: "Output format, one of " + backticked(outputs) + ". Default `qcow2`.",
				Validators:          []validator.String{stringvalidator.OneOf(outputs...)},
				PlanModifiers:       []planmodifier.String{stringplanmodifier.RequiresReplace()},
			},
			"compression": schema.BoolAttribute{
				Optional: true, Computed: true, Default: booldefault.StaticBool(false),
				MarkdownDescription: "Compress the qcow2 output (slower to write and to read). Default `false`.",
				PlanModifiers:       []planmodifier.Bool{boolplanmodifier.RequiresReplace()},
			},
			"overwrite": schema.BoolAttribute{
				Optional: true, Computed: true, Default: booldefault.StaticBool(false),
				MarkdownDescription: "Replace a file that already exists at `path` and that this resource did not create. Default `false`. " +
					"It never allows overwriting a file of the source.",
			},
		},
	}
}

func fixesBlock() schema.SingleNestedBlock {
	var fixes []string
	for _, f := range engine.LinuxFixes() {
		fixes = append(fixes, "`"+f.Name+"` ("+f.Summary+")")
	}
	return schema.SingleNestedBlock{
		MarkdownDescription: "Offline fixes that make the guest boot on KVM, applied to an overlay of the source, never to the source. " +
			"Without the block, every fix runs with its defaults. " +
			"Every change is reported in `fixes_applied` and in the report. Changing what they do replaces the output (writing the block's defaults out, or leaving them out, does not). The fixes, in order: " +
			strings.Join(fixes, "; ") + ".",
		PlanModifiers: []planmodifier.Object{replaceIfEffective(effectiveFixesObject, "the fixes")},
		Attributes: map[string]schema.Attribute{
			"enabled": schema.BoolAttribute{Optional: true,
				MarkdownDescription: "Run the fixes. Default `true`. With `false` the guest is converted as it is."},
			"dry_run": schema.BoolAttribute{Optional: true,
				MarkdownDescription: "Report the changes the fixes would make without writing them. The output is the unfixed guest and the boot test is skipped. Default `false`."},
			"disabled": schema.SetAttribute{Optional: true, ElementType: types.StringType,
				MarkdownDescription: "Fixes to turn off, by name: " + backticked(engine.FixNames()) + ". Default: none.",
				Validators:          []validator.Set{setvalidator.ValueStringsAre(stringvalidator.OneOf(engine.FixNames()...))}},
			"fstab_mode": schema.StringAttribute{Optional: true,
				MarkdownDescription: "Which fstab entries to rewrite to `UUID=` (or `PARTUUID=`, `LABEL=`): `stabilize-all` (every controller-dependent name: /dev/sdX, by-path, by-id), `bypath-only`, or `none`. Default `" + engine.DefaultFstabMode + "`.",
				Validators:          []validator.String{stringvalidator.OneOf(engine.FstabModes()...)}},
			"keep_network_identity": schema.BoolAttribute{Optional: true,
				MarkdownDescription: "Keep the source's MAC pinning and NIC names, for domains that carry the source MAC over. By default they are removed so the NIC comes up under its KVM name."},
			"keep_vmware_tools": schema.BoolAttribute{Optional: true,
				MarkdownDescription: "Leave VMware tools installed. By default they are removed."},
		},
		Blocks: map[string]schema.Block{
			"windows": schema.SingleNestedBlock{
				MarkdownDescription: "Windows guests: where the VirtIO drivers come from. The fix (`windows-virtio`) copies viostor and vioscsi for the guest's " +
					"version and architecture into `System32\\drivers`, registers them as boot-start services with CriticalDeviceDatabase entries for their PCI IDs, " +
					"removes any StartOverride, stages NetKVM and Balloon (pnputil) and the QEMU guest agent (msiexec) for installation at the first administrator logon (RunOnce), " +
					"and schedules VMware Tools' removal. " +
					"Both hives are backed up to `<output>.vmconv-hives` first. A Windows guest without a driver source fails the plan.",
				Attributes: map[string]schema.Attribute{
					"virtio_win": schema.StringAttribute{Optional: true, Validators: []validator.String{stringvalidator.LengthAtLeast(1)},
						MarkdownDescription: "`virtio-win.iso` itself (read in place, without mounting), or the folder it was unpacked to: the one holding `viostor`, `vioscsi`, `NetKVM`, `Balloon`, `guest-agent`..."},
				}},
		},
	}
}

func inspectBlock() schema.SingleNestedBlock {
	return schema.SingleNestedBlock{
		MarkdownDescription: "Inspection settings.",
		PlanModifiers:       []planmodifier.Object{replaceIfEffective(effectiveInspectObject, "the inspection settings")},
		Attributes: map[string]schema.Attribute{
			"root": schema.StringAttribute{Optional: true,
				MarkdownDescription: "The root device of the operating system to convert, when the disk holds more than one (for example `/dev/sda2`). The diagnostic lists the roots found."},
		},
	}
}

// Disk buses and NIC models the boot test offers; the first is the default.
var (
	bootDiskBuses = []string{"virtio", "sata", "scsi"}
	bootNICModels = []string{"virtio", "e1000", "vmxnet3"}
)

// Boot test defaults.
const (
	defaultBootMemory = 1024
	defaultBootCPUs   = 2
)

func bootTestBlock() schema.SingleNestedBlock {
	return schema.SingleNestedBlock{
		MarkdownDescription: "Boot the converted image under QEMU before publishing it, on a throwaway overlay, so the test never changes the output. " +
			"Without the block, the test runs with its defaults. " +
			"The test adds a serial console and a marker unit to the overlay; it passes when the marker reports the guest at multi-user with an IPv4 address. " +
			"Changing these settings re-runs the test on the existing output; it does not replace it. Skipped for disks without an operating system.",
		Attributes: map[string]schema.Attribute{
			"enabled": schema.BoolAttribute{Optional: true, MarkdownDescription: "Run the boot test. Default `true`."},
			"timeout": schema.StringAttribute{Optional: true,
				MarkdownDescription: "How long the guest has to boot, as a duration (`\"10m\"`). Default: 5 minutes under KVM, 15 under software emulation.",
				Validators:          []validator.String{validators.Duration(10*time.Second, 2*time.Hour)}},
			"memory": schema.Int64Attribute{Optional: true,
				MarkdownDescription: "Guest memory in MiB. Default 1024.", Validators: []validator.Int64{int64validator.Between(128, 65536)}},
			"cpus": schema.Int64Attribute{Optional: true,
				MarkdownDescription: "Guest vCPUs. Default 2.", Validators: []validator.Int64{int64validator.Between(1, 64)}},
			"success_pattern": schema.StringAttribute{Optional: true,
				MarkdownDescription: "A regular expression that counts as success on the serial console, instead of the marker (which also checks the network)."},
			"disk_bus": schema.StringAttribute{Optional: true,
				MarkdownDescription: "Disk bus: `virtio` (default), `sata` or `scsi` (virtio-scsi).", Validators: []validator.String{stringvalidator.OneOf(bootDiskBuses...)}},
			"nic_model": schema.StringAttribute{Optional: true,
				MarkdownDescription: "NIC model: `virtio` (default), `e1000` or `vmxnet3`.", Validators: []validator.String{stringvalidator.OneOf(bootNICModels...)}},
			"mac": schema.StringAttribute{Optional: true,
				MarkdownDescription: "The NIC's MAC address. Give the source's MAC to boot the way the source VM did."},
			"require_network": schema.BoolAttribute{Optional: true,
				MarkdownDescription: "Fail the test when no interface gets an IPv4 address. Default `true`."},
			"firmware_boot_entry": schema.StringAttribute{Optional: true,
				MarkdownDescription: "For UEFI guests: give the test VM an NVRAM boot entry for this loader (for example `\\EFI\\debian\\grubx64.efi`), as the source VM's NVRAM had. A converted guest boots without it; this reproduces the source's environment for a control boot."},
		},
	}
}

var (
	windowsFixesAttrTypes = map[string]attr.Type{"virtio_win": types.StringType}
	fixesAttrTypes        = map[string]attr.Type{
		"enabled": types.BoolType, "dry_run": types.BoolType, "disabled": types.SetType{ElemType: types.StringType},
		"fstab_mode": types.StringType, "keep_network_identity": types.BoolType, "keep_vmware_tools": types.BoolType,
		"windows": types.ObjectType{AttrTypes: windowsFixesAttrTypes},
	}
	bootTestAttrTypes = map[string]attr.Type{
		"enabled": types.BoolType, "timeout": types.StringType, "memory": types.Int64Type, "cpus": types.Int64Type,
		"success_pattern": types.StringType, "disk_bus": types.StringType, "nic_model": types.StringType,
		"mac": types.StringType, "require_network": types.BoolType, "firmware_boot_entry": types.StringType,
	}
)

func defaultFixes() types.Object {
	return types.ObjectValueMust(fixesAttrTypes, map[string]attr.Value{
		"enabled": types.BoolValue(true), "dry_run": types.BoolValue(false),
		"disabled": types.SetValueMust(types.StringType, []attr.Value{}), "fstab_mode": types.StringValue(engine.DefaultFstabMode),
		"keep_network_identity": types.BoolValue(false), "keep_vmware_tools": types.BoolValue(false),
		"windows": types.ObjectNull(windowsFixesAttrTypes),
	})
}

func defaultBootTest() types.Object {
	return types.ObjectValueMust(bootTestAttrTypes, map[string]attr.Value{
		"enabled": types.BoolValue(true), "timeout": types.StringNull(), "memory": types.Int64Value(defaultBootMemory), "cpus": types.Int64Value(defaultBootCPUs),
		"success_pattern": types.StringNull(), "disk_bus": types.StringValue(bootDiskBuses[0]), "nic_model": types.StringValue(bootNICModels[0]),
		"mac": types.StringNull(), "require_network": types.BoolValue(true), "firmware_boot_entry": types.StringNull(),
	})
}
