package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework-validators/int64validator"
	"github.com/hashicorp/terraform-plugin-framework-validators/setvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/booldefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/boolplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64default"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/listplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/objectdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/objectplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/setdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/tfsdk"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/vmconv/terraform-provider-vmconv/engine"
	"github.com/vmconv/terraform-provider-vmconv/engine/diskformat"
	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/engine/fingerprint"
	"github.com/vmconv/terraform-provider-vmconv/engine/fix"
	"github.com/vmconv/terraform-provider-vmconv/engine/guest"
	"github.com/vmconv/terraform-provider-vmconv/engine/output"
	"github.com/vmconv/terraform-provider-vmconv/engine/validate"
	"github.com/vmconv/terraform-provider-vmconv/internal/provider/validators"
)

var (
	_ resource.Resource                = &diskConversionResource{}
	_ resource.ResourceWithConfigure   = &diskConversionResource{}
	_ resource.ResourceWithModifyPlan  = &diskConversionResource{}
	_ resource.ResourceWithImportState = &diskConversionResource{}
)

// NewDiskConversionResource is the vmconv_disk_conversion constructor.
func NewDiskConversionResource() resource.Resource {
	return &diskConversionResource{}
}

type diskConversionResource struct {
	data *providerData
}

type diskConversionModel struct {
	ID                types.String   `tfsdk:"id"`
	Source            *sourceModel   `tfsdk:"source"`
	Output            *outputModel   `tfsdk:"output"`
	Timeouts          timeouts.Value `tfsdk:"timeouts"`
	SourceFormat      types.String   `tfsdk:"source_format"`
	Chain             types.List     `tfsdk:"chain"`
	VirtualSize       types.Int64    `tfsdk:"virtual_size"`
	OutputSize        types.Int64    `tfsdk:"output_size"`
	OutputSHA256      types.String   `tfsdk:"output_sha256"`
	SourceFingerprint types.String   `tfsdk:"source_fingerprint"`
	ReportPath        types.String   `tfsdk:"report_path"`
	Fixes             *fixesModel    `tfsdk:"fixes"`
	Inspect           *inspectModel  `tfsdk:"inspect"`
	BootTest          *bootTestModel `tfsdk:"boot_test"`
	FixesApplied      types.List     `tfsdk:"fixes_applied"`
	BootTestResult    types.Object   `tfsdk:"boot_test_result"`
	Guest             types.Object   `tfsdk:"guest"`
	PlanPath          types.String   `tfsdk:"plan_path"`
	EstimatedSize     types.Int64    `tfsdk:"estimated_output_size"`
	PlannedStages     types.List     `tfsdk:"planned_stages"`
	PlannedFixes      types.List     `tfsdk:"planned_fixes"`
	PlannedFirmware   types.String   `tfsdk:"planned_firmware"`
	PlanWarnings      types.List     `tfsdk:"plan_warnings"`
}

type fixesModel struct {
	Enabled             types.Bool    `tfsdk:"enabled"`
	DryRun              types.Bool    `tfsdk:"dry_run"`
	Disabled            types.Set     `tfsdk:"disabled"`
	FstabMode           types.String  `tfsdk:"fstab_mode"`
	KeepNetworkIdentity types.Bool    `tfsdk:"keep_network_identity"`
	KeepVMwareTools     types.Bool    `tfsdk:"keep_vmware_tools"`
	Windows             *windowsFixes `tfsdk:"windows"`
}

type windowsFixes struct {
	VirtioWin types.String `tfsdk:"virtio_win"`
}

type inspectModel struct {
	Root types.String `tfsdk:"root"`
}

type bootTestModel struct {
	Enabled           types.Bool   `tfsdk:"enabled"`
	Timeout           types.String `tfsdk:"timeout"`
	Memory            types.Int64  `tfsdk:"memory"`
	CPUs              types.Int64  `tfsdk:"cpus"`
	SuccessPattern    types.String `tfsdk:"success_pattern"`
	DiskBus           types.String `tfsdk:"disk_bus"`
	NICModel          types.String `tfsdk:"nic_model"`
	MAC               types.String `tfsdk:"mac"`
	RequireNetwork    types.Bool   `tfsdk:"require_network"`
	FirmwareBootEntry types.String `tfsdk:"firmware_boot_entry"`
}

func (b *bootTestModel) equal(o *bootTestModel) bool {
	if b == nil || o == nil {
		return b == o
	}
	return b.Enabled.Equal(o.Enabled) && b.Timeout.Equal(o.Timeout) && b.Memory.Equal(o.Memory) && b.CPUs.Equal(o.CPUs) &&
		b.SuccessPattern.Equal(o.SuccessPattern) && b.DiskBus.Equal(o.DiskBus) && b.NICModel.Equal(o.NICModel) &&
		b.MAC.Equal(o.MAC) && b.RequireNetwork.Equal(o.RequireNetwork) && b.FirmwareBootEntry.Equal(o.FirmwareBootEntry)
}

var (
	fixesAttrTypes = map[string]attr.Type{
		"enabled": types.BoolType, "dry_run": types.BoolType, "disabled": types.SetType{ElemType: types.StringType},
		"fstab_mode": types.StringType, "keep_network_identity": types.BoolType, "keep_vmware_tools": types.BoolType,
		"windows": types.ObjectType{AttrTypes: map[string]attr.Type{"virtio_win": types.StringType}},
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
		"disabled": types.SetValueMust(types.StringType, []attr.Value{}), "fstab_mode": types.StringValue(fix.FstabStabilizeAll),
		"keep_network_identity": types.BoolValue(false), "keep_vmware_tools": types.BoolValue(false),
		"windows": types.ObjectNull(map[string]attr.Type{"virtio_win": types.StringType}),
	})
}

func defaultBootTest() types.Object {
	return types.ObjectValueMust(bootTestAttrTypes, map[string]attr.Value{
		"enabled": types.BoolValue(true), "timeout": types.StringNull(), "memory": types.Int64Value(1024), "cpus": types.Int64Value(2),
		"success_pattern": types.StringNull(), "disk_bus": types.StringValue("virtio"), "nic_model": types.StringValue("virtio"),
		"mac": types.StringNull(), "require_network": types.BoolValue(true), "firmware_boot_entry": types.StringNull(),
	})
}

type sourceModel struct {
	Path                   types.String  `tfsdk:"path"`
	OVA                    *ovaModel     `tfsdk:"ova"`
	URL                    *urlModel     `tfsdk:"url"`
	VSphere                *vsphereModel `tfsdk:"vsphere"`
	ESXi                   *esxiModel    `tfsdk:"esxi_ssh"`
	Format                 types.String  `tfsdk:"format"`
	AllowParentCIDMismatch types.Bool    `tfsdk:"allow_parent_cid_mismatch"`
}

type esxiModel struct {
	Host       types.String `tfsdk:"host"`
	User       types.String `tfsdk:"user"`
	PrivateKey types.String `tfsdk:"private_key"`
	HostKey    types.String `tfsdk:"host_key"`
	Path       types.String `tfsdk:"path"`
}

type vsphereModel struct {
	URL        types.String `tfsdk:"url"`
	Datacenter types.String `tfsdk:"datacenter"`
	VM         types.String `tfsdk:"vm"`
	Disk       types.Int64  `tfsdk:"disk"`
	Snapshot   types.String `tfsdk:"snapshot"`
	Thumbprint types.String `tfsdk:"thumbprint"`
	Insecure   types.Bool   `tfsdk:"insecure"`
}

type urlModel struct {
	Href    types.String `tfsdk:"href"`
	SHA256  types.String `tfsdk:"sha256"`
	Headers types.Map    `tfsdk:"headers"`
}

type ovaModel struct {
	Path   types.String `tfsdk:"path"`
	URL    types.String `tfsdk:"url"`
	SHA256 types.String `tfsdk:"sha256"`
	Disk   types.Int64  `tfsdk:"disk"`
}

type outputModel struct {
	Path        types.String `tfsdk:"path"`
	Format      types.String `tfsdk:"format"`
	Compression types.Bool   `tfsdk:"compression"`
	Overwrite   types.Bool   `tfsdk:"overwrite"`
}

// Private state keys.
const (
	privStamp = "output_stamp"
	privDrift = "output_drift"
)

// Default operation timeouts. A multi-GiB conversion with a boot test under
// software emulation can take most of an hour.
const (
	defaultCreateTimeout = 60 * time.Minute
	defaultReadTimeout   = 5 * time.Minute
	defaultUpdateTimeout = 5 * time.Minute
	defaultDeleteTimeout = 5 * time.Minute
)

func (r *diskConversionResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_disk_conversion"
}

func formatNames(fs []diskformat.Format) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = string(f)
	}
	return out
}

func backticked(xs []string) string {
	q := make([]string, len(xs))
	for i, x := range xs {
		q[i] = "`" + x + "`"
	}
	return strings.Join(q, ", ")
}

func (r *diskConversionResource) Schema(ctx context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	inputs, outputs := formatNames(diskformat.Inputs), formatNames(diskformat.Outputs)
	resp.Schema = schema.Schema{
		MarkdownDescription: "Converts a VM disk (VMDK snapshot chains included, and VHD, VHDX, VDI, qcow2 or raw) into a KVM-ready image. " +
			"The plan shows the detected format, the snapshot chain, the sizes and the stages that will run; the apply writes the output atomically " +
			"and never modifies the source. Read detects an output that was deleted or changed outside Terraform, so the next plan recreates it.",
		Attributes: map[string]schema.Attribute{
			// Required
			"source": schema.SingleNestedAttribute{
				Required:            true,
				MarkdownDescription: "The disk to convert. It is opened read-only and never modified.",
				Attributes: map[string]schema.Attribute{
					"path": schema.StringAttribute{
						Optional: true,
						MarkdownDescription: "Path of the disk's newest file: for a snapshot chain, the newest snapshot's descriptor (for example `web-000002.vmdk`). " +
							"The format is detected from the content, not the name. Every file the chain references must lie in this file's folder. " +
							"Exactly one of `path` and `ova` is set.",
						Validators: []validator.String{stringvalidator.LengthAtLeast(1),
							stringvalidator.ExactlyOneOf(path.MatchRelative().AtParent().AtName("ova"), path.MatchRelative().AtParent().AtName("url"),
								path.MatchRelative().AtParent().AtName("vsphere"), path.MatchRelative().AtParent().AtName("esxi_ssh"))},
						PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()},
					},
					"esxi_ssh": schema.SingleNestedAttribute{
						Optional: true,
						MarkdownDescription: "A VMDK on an ESXi host's datastore, copied over SSH (SFTP) with its extents and snapshot parents into the cache: " +
							"resumed after an interruption, reused while unchanged. The host key must be pinned: an unknown or changed key is refused.",
						PlanModifiers: []planmodifier.Object{objectplanmodifier.RequiresReplace()},
						Attributes: map[string]schema.Attribute{
							"host": schema.StringAttribute{Required: true, MarkdownDescription: "The host, or host:port."},
							"user": schema.StringAttribute{Required: true, MarkdownDescription: "The SSH user, such as `root`."},
							"private_key": schema.StringAttribute{Required: true, Sensitive: true, WriteOnly: true,
								MarkdownDescription: "The SSH private key (PEM or OpenSSH, no passphrase). Write-only (Terraform 1.11+): never stored in the plan or state, never logged."},
							"host_key": schema.StringAttribute{Required: true,
								MarkdownDescription: "The host's public key as in `known_hosts` (`ssh-ed25519 AAAA...`) or its `SHA256:` fingerprint."},
							"path": schema.StringAttribute{Required: true, MarkdownDescription: "`[datastore] folder/file.vmdk`, or an absolute path on the host."},
						},
					},
					"vsphere": schema.SingleNestedAttribute{
						Optional: true,
						MarkdownDescription: "A VM's disk in vCenter or ESXi, with its whole snapshot chain, copied through the datastore's `/folder` HTTP interface " +
							"(ranged, resumable, reused when unchanged) into the cache. Credentials come from the provider (`vsphere_username`, `vsphere_password`). " +
							"Plans read the VM's configuration only; the copy happens at apply. With `snapshot = \"create\"` (the default) vmconv takes a snapshot, " +
							"reads the disk as of that snapshot while the VM runs on, and removes the snapshot afterwards, also when the apply fails. " +
							"A session that expires during a long copy is logged in again.",
						PlanModifiers: []planmodifier.Object{objectplanmodifier.RequiresReplace()},
						Attributes: map[string]schema.Attribute{
							"url":        schema.StringAttribute{Required: true, MarkdownDescription: "The SDK endpoint, such as `https://vcenter.example/sdk`."},
							"datacenter": schema.StringAttribute{Optional: true, MarkdownDescription: "The datacenter; may be omitted when there is only one."},
							"vm":         schema.StringAttribute{Required: true, MarkdownDescription: "The VM's name or inventory path."},
							"disk": schema.Int64Attribute{Optional: true, Computed: true, Default: int64default.StaticInt64(0),
								MarkdownDescription: "Which disk, in the order `vmconv_vsphere_vm` lists them, from 0.", Validators: []validator.Int64{int64validator.AtLeast(0)}},
							"snapshot": schema.StringAttribute{Optional: true, Computed: true, Default: stringdefault.StaticString("create"),
								MarkdownDescription: "`create` (default): read from a snapshot taken for the copy. `none`: read the disk as it is, for a powered-off VM.",
								Validators:          []validator.String{stringvalidator.OneOf("create", "none")}},
							"thumbprint": schema.StringAttribute{Optional: true, MarkdownDescription: "Pins the server certificate's thumbprint."},
							"insecure":   schema.BoolAttribute{Optional: true, MarkdownDescription: "Skip certificate verification (lab systems only)."},
						},
					},
					"url": schema.SingleNestedAttribute{
						Optional: true,
						MarkdownDescription: "A disk file on an HTTP(S) server, downloaded with retries and Range resume into the cache folder (a repeated apply after an interruption continues " +
							"the download, and reuses a finished, verified one). Plans use the server's metadata (HEAD) unless the provider's `plan_fetch` is true or the file is already " +
							"downloaded; format, chain and sizes are then known after apply. The URL is shown redacted (no user info or query) in logs, plans and reports.",
						PlanModifiers: []planmodifier.Object{objectplanmodifier.RequiresReplace()},
						Attributes: map[string]schema.Attribute{
							"href": schema.StringAttribute{Required: true, MarkdownDescription: "The `http://` or `https://` URL. Put credentials in `headers`, not in the URL.",
								Validators: []validator.String{stringvalidator.RegexMatches(regexp.MustCompile(`^https?://`), "must be an http:// or https:// URL")}},
							"sha256": schema.StringAttribute{Optional: true, MarkdownDescription: "The file's expected SHA-256 (hex). The download is refused when it differs.",
								Validators: []validator.String{stringvalidator.RegexMatches(regexp.MustCompile(`^[0-9a-fA-F]{64}$`), "must be 64 hexadecimal digits")}},
							"headers": schema.MapAttribute{Optional: true, Sensitive: true, WriteOnly: true, ElementType: types.StringType,
								MarkdownDescription: "Request headers, such as `Authorization`. Write-only (Terraform 1.11+): never stored in the plan or state, never logged, " +
									"never written to the plan file or report. Changing them does not replace the output."},
						},
					},
					"ova": schema.SingleNestedAttribute{
						Optional: true,
						MarkdownDescription: "A local OVA archive. It is read as a stream, once: the OVF descriptor is parsed (CPUs, memory, firmware, NICs, in the plan's JSON), " +
							"the manifest checked, and the chosen disk extracted into the cache folder, keyed by the archive's fingerprint, where later plans and applies reuse it. " +
							"Archives with absolute or `../` member names, links, duplicates, missing disks or a manifest mismatch are refused.",
						PlanModifiers: []planmodifier.Object{objectplanmodifier.RequiresReplace()},
						Attributes: map[string]schema.Attribute{
							"path": schema.StringAttribute{Optional: true, MarkdownDescription: "Path of the `.ova` file. Exactly one of `path` and `url`.",
								Validators: []validator.String{stringvalidator.LengthAtLeast(1), stringvalidator.ExactlyOneOf(path.MatchRelative().AtParent().AtName("url"))}},
							"url": schema.StringAttribute{Optional: true,
								MarkdownDescription: "An `http://` or `https://` URL of the OVA: downloaded resumably into the cache (planned from the server's metadata unless `plan_fetch`), then extracted like a local one.",
								Validators:          []validator.String{stringvalidator.RegexMatches(regexp.MustCompile(`^https?://`), "must be an http:// or https:// URL")}},
							"sha256": schema.StringAttribute{Optional: true, MarkdownDescription: "With `url`: the OVA's expected SHA-256.",
								Validators: []validator.String{stringvalidator.RegexMatches(regexp.MustCompile(`^[0-9a-fA-F]{64}$`), "must be 64 hexadecimal digits")}},
							"disk": schema.Int64Attribute{Optional: true, Computed: true, Default: int64default.StaticInt64(0),
								MarkdownDescription: "Which of the OVF's disks, in its order, from 0. Default 0.",
								Validators:          []validator.Int64{int64validator.AtLeast(0)}},
						},
					},
					"format": schema.StringAttribute{
						Optional: true,
						MarkdownDescription: "Declares the source format instead of detecting it, for raw disks that start with no recognisable partition table or file system. " +
							"It must not contradict the content. One of " + backticked(inputs) + ".",
						Validators:    []validator.String{stringvalidator.OneOf(inputs...)},
						PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()},
					},
					"allow_parent_cid_mismatch": schema.BoolAttribute{
						Optional: true, Computed: true, Default: booldefault.StaticBool(false),
						MarkdownDescription: "Convert a snapshot chain even where a snapshot's `parentCID` does not match its parent's `CID` " +
							"(the parent was changed after the snapshot was taken). Off by default, because the result may be inconsistent.",
					},
				},
			},
			"output": schema.SingleNestedAttribute{
				Required:            true,
				MarkdownDescription: "The image to write. It appears atomically: a failed or interrupted apply leaves nothing at `path`.",
				Attributes: map[string]schema.Attribute{
					"path": schema.StringAttribute{
						Required:            true,
						MarkdownDescription: "Path of the output image. Its folder must exist. It may not be, or link to, a file of the source.",
						Validators:          []validator.String{stringvalidator.LengthAtLeast(1)},
						PlanModifiers:       []planmodifier.String{stringplanmodifier.RequiresReplace()},
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
			},
			// Optional
			"fixes": schema.SingleNestedAttribute{
				Optional: true, Computed: true, Default: objectdefault.StaticValue(defaultFixes()),
				MarkdownDescription: "Offline fixes that make the guest boot on KVM, applied to an overlay of the source, never to the source. " +
					"Every change is reported in `fixes_applied` and in the report. Changing any of these replaces the output. The fixes, in order: " +
					fixList() + ".",
				PlanModifiers: []planmodifier.Object{objectplanmodifier.RequiresReplace()},
				Attributes: map[string]schema.Attribute{
					"enabled": schema.BoolAttribute{Optional: true, Computed: true, Default: booldefault.StaticBool(true),
						MarkdownDescription: "Run the fixes. Default `true`. With `false` the guest is converted as it is."},
					"dry_run": schema.BoolAttribute{Optional: true, Computed: true, Default: booldefault.StaticBool(false),
						MarkdownDescription: "Report the changes the fixes would make without writing them. The output is the unfixed guest and the boot test is skipped."},
					"disabled": schema.SetAttribute{Optional: true, Computed: true, ElementType: types.StringType,
						Default:             setdefault.StaticValue(types.SetValueMust(types.StringType, []attr.Value{})),
						MarkdownDescription: "Fixes to turn off, by name: " + backticked(fix.Names()) + ".",
						Validators:          []validator.Set{setvalidator.ValueStringsAre(stringvalidator.OneOf(fix.Names()...))}},
					"fstab_mode": schema.StringAttribute{Optional: true, Computed: true, Default: stringdefault.StaticString(fix.FstabStabilizeAll),
						MarkdownDescription: "Which fstab entries to rewrite to `UUID=` (or `PARTUUID=`, `LABEL=`): `stabilize-all` (every controller-dependent name: /dev/sdX, by-path, by-id), `bypath-only`, or `none`.",
						Validators:          []validator.String{stringvalidator.OneOf(fix.FstabStabilizeAll, fix.FstabByPathOnly, fix.FstabNone)}},
					"keep_network_identity": schema.BoolAttribute{Optional: true, Computed: true, Default: booldefault.StaticBool(false),
						MarkdownDescription: "Keep the source's MAC pinning and NIC names, for domains that carry the source MAC over. By default they are removed so the NIC comes up under its KVM name."},
					"keep_vmware_tools": schema.BoolAttribute{Optional: true, Computed: true, Default: booldefault.StaticBool(false),
						MarkdownDescription: "Leave VMware tools installed. By default they are removed."},
					"windows": schema.SingleNestedAttribute{Optional: true,
						MarkdownDescription: "Windows guests: where the VirtIO drivers come from. The fix (`windows-virtio`) copies viostor and vioscsi for the guest's " +
							"version and architecture into `System32\\drivers`, registers them as boot-start services with CriticalDeviceDatabase entries for their PCI IDs, " +
							"removes any StartOverride, stages NetKVM and Balloon (pnputil) and the QEMU guest agent (msiexec) for installation at the first administrator logon (RunOnce), " +
							"and schedules VMware Tools' removal. " +
							"Both hives are backed up to `<output>.vmconv-hives` first. A Windows guest without a driver source fails the plan.",
						Attributes: map[string]schema.Attribute{
							"virtio_win": schema.StringAttribute{Required: true,
								MarkdownDescription: "`virtio-win.iso` itself (read in place, without mounting), or the folder it was unpacked to: the one holding `viostor`, `vioscsi`, `NetKVM`, `Balloon`, `guest-agent`..."},
						}},
				},
			},
			"inspect": schema.SingleNestedAttribute{
				Optional:            true,
				MarkdownDescription: "Inspection settings.",
				PlanModifiers:       []planmodifier.Object{objectplanmodifier.RequiresReplace()},
				Attributes: map[string]schema.Attribute{
					"root": schema.StringAttribute{Optional: true,
						MarkdownDescription: "The root device of the operating system to convert, when the disk holds more than one (for example `/dev/sda2`). The diagnostic lists the roots found."},
				},
			},
			"boot_test": schema.SingleNestedAttribute{
				Optional: true, Computed: true, Default: objectdefault.StaticValue(defaultBootTest()),
				MarkdownDescription: "Boot the converted image under QEMU before publishing it, on a throwaway overlay, so the test never changes the output. " +
					"The test adds a serial console and a marker unit to the overlay; it passes when the marker reports the guest at multi-user with an IPv4 address. " +
					"Changing these settings re-runs the test on the existing output; it does not replace it. Skipped for disks without an operating system.",
				Attributes: map[string]schema.Attribute{
					"enabled": schema.BoolAttribute{Optional: true, Computed: true, Default: booldefault.StaticBool(true), MarkdownDescription: "Run the boot test. Default `true`."},
					"timeout": schema.StringAttribute{Optional: true,
						MarkdownDescription: "How long the guest has to boot, as a duration (`\"10m\"`). Default: 5 minutes under KVM, 15 under software emulation.",
						Validators:          []validator.String{validators.Duration(10*time.Second, 2*time.Hour)}},
					"memory": schema.Int64Attribute{Optional: true, Computed: true, Default: int64default.StaticInt64(1024),
						MarkdownDescription: "Guest memory in MiB. Default 1024.", Validators: []validator.Int64{int64validator.Between(128, 65536)}},
					"cpus": schema.Int64Attribute{Optional: true, Computed: true, Default: int64default.StaticInt64(2),
						MarkdownDescription: "Guest vCPUs. Default 2.", Validators: []validator.Int64{int64validator.Between(1, 64)}},
					"success_pattern": schema.StringAttribute{Optional: true,
						MarkdownDescription: "A regular expression that counts as success on the serial console, instead of the marker (which also checks the network)."},
					"disk_bus": schema.StringAttribute{Optional: true, Computed: true, Default: stringdefault.StaticString("virtio"),
						MarkdownDescription: "Disk bus: `virtio` (default), `sata` or `scsi` (virtio-scsi).", Validators: []validator.String{stringvalidator.OneOf("virtio", "sata", "scsi")}},
					"nic_model": schema.StringAttribute{Optional: true, Computed: true, Default: stringdefault.StaticString("virtio"),
						MarkdownDescription: "NIC model: `virtio` (default), `e1000` or `vmxnet3`.", Validators: []validator.String{stringvalidator.OneOf("virtio", "e1000", "vmxnet3")}},
					"mac": schema.StringAttribute{Optional: true,
						MarkdownDescription: "The NIC's MAC address. Give the source's MAC to boot the way the source VM did."},
					"require_network": schema.BoolAttribute{Optional: true, Computed: true, Default: booldefault.StaticBool(true),
						MarkdownDescription: "Fail the test when no interface gets an IPv4 address. Default `true`."},
					"firmware_boot_entry": schema.StringAttribute{Optional: true,
						MarkdownDescription: "For UEFI guests: give the test VM an NVRAM boot entry for this loader (for example `\\EFI\\debian\\grubx64.efi`), as the source VM's NVRAM had. A converted guest boots without it; this reproduces the source's environment for a control boot."},
				},
			},
			"timeouts": timeouts.Attributes(ctx, timeouts.Opts{Create: true, Read: true, Update: true, Delete: true}),
			"plan_path": schema.StringAttribute{
				Optional: true,
				MarkdownDescription: "Write the engine's plan here as JSON at every plan that computes it (and again at apply), for review in CI: " +
					"the source and its chain, the output estimate, the stages, the inspected guest and the fixes' dry run. Changing it does not touch the output.",
			},
			// Plan-time previews: known after terraform plan, before a byte moves.
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
			"planned_fixes": schema.ListNestedAttribute{
				Computed: true,
				MarkdownDescription: "The changes the fixes will make, from the guest's plan-time inspection and a dry run of the fixes (null when the plan did not inspect: " +
					"provider `plan_inspection = false`, or fixes and boot test off). `fixes_applied` records what apply then did.",
				PlanModifiers: []planmodifier.List{listplanmodifier.UseStateForUnknown()},
				NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
					"fix":     schema.StringAttribute{Computed: true, MarkdownDescription: "The fix."},
					"action":  schema.StringAttribute{Computed: true, MarkdownDescription: "`write`, `remove` or `run`."},
					"path":    schema.StringAttribute{Computed: true, MarkdownDescription: "The guest file changed."},
					"command": schema.StringAttribute{Computed: true, MarkdownDescription: "The command run in the guest."},
					"reason":  schema.StringAttribute{Computed: true, MarkdownDescription: "Why."},
				}},
			},
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
			"fixes_applied": schema.ListNestedAttribute{
				Computed: true, MarkdownDescription: "Every change the fixes made to the guest (in a dry run: would make), in order. The report holds each file's content before and after.",
				PlanModifiers: []planmodifier.List{listplanmodifier.UseStateForUnknown()},
				NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
					"fix":           schema.StringAttribute{Computed: true, MarkdownDescription: "The fix that made the change."},
					"action":        schema.StringAttribute{Computed: true, MarkdownDescription: "`modified`, `created`, `deleted` or `command`."},
					"path":          schema.StringAttribute{Computed: true, MarkdownDescription: "The guest file changed."},
					"command":       schema.StringAttribute{Computed: true, MarkdownDescription: "The command run in the guest, for `command`."},
					"reason":        schema.StringAttribute{Computed: true, MarkdownDescription: "Why."},
					"before_sha256": schema.StringAttribute{Computed: true, MarkdownDescription: "The file's SHA-256 before."},
					"after_sha256":  schema.StringAttribute{Computed: true, MarkdownDescription: "The file's SHA-256 after."},
				}},
			},
			"boot_test_result": schema.SingleNestedAttribute{
				Computed: true, MarkdownDescription: "The outcome of the last boot test.",
				PlanModifiers: []planmodifier.Object{objectplanmodifier.UseStateForUnknown()},
				Attributes: map[string]schema.Attribute{
					"status":           schema.StringAttribute{Computed: true, MarkdownDescription: "`passed` or `failed`."},
					"reason":           schema.StringAttribute{Computed: true, MarkdownDescription: "`success`, or why it failed: `root_not_found`, `kernel_panic`, `emergency_mode`, `no_bootloader`, `network_down`, `timeout`."},
					"detail":           schema.StringAttribute{Computed: true, MarkdownDescription: "What was seen."},
					"duration_seconds": schema.Float64Attribute{Computed: true, MarkdownDescription: "How long the boot took."},
					"console_log":      schema.StringAttribute{Computed: true, MarkdownDescription: "Path of the serial console log, kept beside the output."},
					"ip_addresses":     schema.ListAttribute{Computed: true, ElementType: types.StringType, MarkdownDescription: "The guest's IPv4 addresses, as `interface=address/prefix`."},
					"accel":            schema.StringAttribute{Computed: true, MarkdownDescription: "`kvm` or `tcg` (software emulation)."},
					"disk_bus":         schema.StringAttribute{Computed: true, MarkdownDescription: "The disk bus booted."},
					"nic_model":        schema.StringAttribute{Computed: true, MarkdownDescription: "The NIC model booted."},
					"firmware":         schema.StringAttribute{Computed: true, MarkdownDescription: "`bios` or `uefi`."},
				},
			},
			"guest": schema.SingleNestedAttribute{
				Computed: true, MarkdownDescription: "What inspection found in the guest (null when neither fixes nor boot test ran).",
				PlanModifiers: []planmodifier.Object{objectplanmodifier.UseStateForUnknown()},
				Attributes:    guestSchemaAttributes(),
			},
		},
	}
}

func fixList() string {
	var parts []string
	for _, f := range fix.All() {
		parts = append(parts, "`"+f.Name()+"` ("+f.Summary()+")")
	}
	return strings.Join(parts, "; ")
}

// guestSchemaAttributes describes the guest object, shared with data sources.
func guestSchemaAttributes() map[string]schema.Attribute {
	str := func(d string) schema.Attribute { return schema.StringAttribute{Computed: true, MarkdownDescription: d} }
	list := func(d string) schema.Attribute {
		return schema.ListAttribute{Computed: true, ElementType: types.StringType, MarkdownDescription: d}
	}
	return map[string]schema.Attribute{
		"os": str("`linux`, `windows`, or `none` for a disk without an operating system."), "distro": str("Distribution."),
		"version": str("Version, major.minor."), "product_name": str("Product name."), "arch": str("Architecture."),
		"hostname": str("Host name."), "root": str("Root device."), "firmware": str("`bios` or `uefi`."),
		"bootloader": str("Boot loader."), "initramfs_tool": str("`initramfs-tools` or `dracut`."),
		"network_stacks": list("Network configuration systems in use."), "hypervisor_tools": list("Hypervisor tools installed."),
		"kernels": list("Installed kernel versions."), "filesystems": list("File systems: device, type and mount point."),
		"lvm": list("LVM logical volumes."), "selinux": str("SELinux mode, if configured."),
	}
}

func (r *diskConversionResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.data = configured(req.ProviderData, &resp.Diagnostics)
}

func (r *diskConversionResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if req.Plan.Raw.IsNull() || r.data == nil {
		return // destroy, or validation before the provider is configured
	}
	var plan diskConversionModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	var state *diskConversionModel
	if !req.State.Raw.IsNull() {
		state = &diskConversionModel{}
		resp.Diagnostics.Append(req.State.Get(ctx, state)...)
	}
	if resp.Diagnostics.HasError() || !knownInputs(&plan) {
		return // inputs that depend on other resources are planned at apply
	}
	e := r.data.engine
	ereq := toRequest(&plan)
	withConfigHeaders(ctx, req.Config, &ereq, &resp.Diagnostics)
	r.withCredentials(&ereq)
	managed := state != nil && state.Output != nil && state.Output.Path.Equal(plan.Output.Path)
	ep, err := e.Plan(ctx, ereq, engine.PlanOptions{ManagedOutput: managed, Inspect: r.data.planInspection, Fetch: r.data.planFetch})
	if state == nil && fault.Is(err, fault.OutputExists) && hasReport(ereq.Output.Path) {
		// A replacement re-plans with no prior state while the old output is
		// still there. A vmconv output may be this resource's; Create refuses
		// it if it is not.
		tflog.Debug(ctx, "existing vmconv output at the output path; Create decides", map[string]any{"path": ereq.Output.Path})
		ep, err = e.Plan(ctx, ereq, engine.PlanOptions{ManagedOutput: true, Inspect: r.data.planInspection, Fetch: r.data.planFetch})
	}
	if err != nil {
		if state != nil && (fault.Is(err, fault.SourceMissing) || fault.Is(err, fault.SourceUnreadable)) {
			resp.Diagnostics.AddAttributeWarning(path.Root("source").AtName("path"), summarySourceUnavailable,
				detailFor("Planning the conversion", err)+"\n\nThe existing output is kept as it is. Restore the source to detect changes again.")
			return
		}
		addFaultAt(&resp.Diagnostics, attributeFor(err), "Planning the conversion", err)
		return
	}
	if last, ok := e.LastPlanned(ep.Output.Path); ok && last.Fingerprint != ep.Source.Fingerprint &&
		(state == nil || last.Fingerprint != state.SourceFingerprint.ValueString()) {
		resp.Diagnostics.AddAttributeWarning(path.Root("source"), summarySourceChangedPlan, sourceChangeDetail(last, ep))
	}
	if err := e.RecordPlanned(ep); err != nil {
		tflog.Warn(ctx, "cannot record the plan", map[string]any{"error": err.Error()})
	}

	if state == nil || plan.SourceFingerprint.IsUnknown() {
		writePlanFile(ctx, &plan, ep, &resp.Diagnostics)
		setPlanned(ctx, &plan, ep, &resp.Diagnostics)
		if ep.Source.Deferred {
			// A remote source planned from its metadata: what its content
			// decides is known after apply.
			plan.SourceFormat, plan.VirtualSize, plan.EstimatedSize = types.StringUnknown(), types.Int64Unknown(), types.Int64Unknown()
			plan.Chain, plan.PlannedStages = types.ListUnknown(types.StringType), types.ListUnknown(types.StringType)
			plan.PlannedFixes = types.ListUnknown(types.ObjectType{AttrTypes: plannedFixAttrTypes})
			plan.PlannedFirmware, plan.PlanWarnings = types.StringUnknown(), types.ListUnknown(types.StringType)
		}
		resp.Diagnostics.Append(resp.Plan.Set(ctx, &plan)...)
		return
	}
	if !plan.BootTest.equal(state.BootTest) {
		// Update re-runs the boot test on the existing output.
		plan.BootTestResult = types.ObjectUnknown(bootResultAttrTypes)
	}
	if drift, _ := req.Private.GetKey(ctx, privDrift); len(drift) > 0 {
		resp.Diagnostics.AddAttributeWarning(path.Root("output").AtName("path"), summaryOutputDrift,
			fmt.Sprintf("The output %s was modified outside Terraform after it was written (its size, modification time or sampled content no longer match). "+
				"It will be replaced with a fresh conversion.", ereq.Output.Path))
		plan.OutputSHA256, plan.OutputSize = types.StringUnknown(), types.Int64Unknown()
		resp.RequiresReplace = append(resp.RequiresReplace, path.Root("output_sha256"))
	}
	if ep.Source.Fingerprint != state.SourceFingerprint.ValueString() {
		resp.Diagnostics.AddAttributeWarning(path.Root("source"), "Source Disk Changed",
			fmt.Sprintf("The source changed since the output was written, so the output will be replaced.\n\n%s", chainChange(state, ep)))
		setPlanned(ctx, &plan, ep, &resp.Diagnostics)
		plan.OutputSHA256, plan.OutputSize = types.StringUnknown(), types.Int64Unknown()
		resp.RequiresReplace = append(resp.RequiresReplace, path.Root("source_fingerprint"))
	}
	writePlanFile(ctx, &plan, ep, &resp.Diagnostics)
	resp.Diagnostics.Append(resp.Plan.Set(ctx, &plan)...)
}

func (r *diskConversionResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	if r.data == nil {
		resp.Diagnostics.AddError(summaryUnconfigured, unconfiguredDetail("creating a conversion"))
		return
	}
	var plan diskConversionModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, d := plan.Timeouts.Create(ctx, defaultCreateTimeout)
	resp.Diagnostics.Append(d...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	e := r.data.engine
	ereq := toRequest(&plan)
	withConfigHeaders(ctx, req.Config, &ereq, &resp.Diagnostics)
	r.withCredentials(&ereq)
	ep, err := e.Plan(ctx, ereq, engine.PlanOptions{Inspect: r.data.planInspection, Fetch: true})
	if fault.Is(err, fault.OutputExists) && hasReport(ereq.Output.Path) {
		// A vmconv output is at the path, perhaps the one an apply of this
		// resource published before it was killed, and Terraform never
		// recorded. Plan as if it were ours; Adopt below decides.
		ep, err = e.Plan(ctx, ereq, engine.PlanOptions{ManagedOutput: true, Inspect: r.data.planInspection, Fetch: true})
	}
	if err != nil {
		addFaultAt(&resp.Diagnostics, attributeFor(err), "Converting the disk", err)
		return
	}
	if want := plan.SourceFingerprint.ValueString(); !plan.SourceFingerprint.IsUnknown() && want != "" && want != ep.Source.Fingerprint {
		addFaultAt(&resp.Diagnostics, path.Root("source"), "Converting the disk",
			fault.New(fault.SourceChanged, ep.Source.Path, "the source changed between plan and apply").
				WithHint("Run terraform plan again and review the new plan.").
				WithFact("Planned fingerprint", want).WithFact("Current fingerprint", ep.Source.Fingerprint))
		return
	}
	sink := newLogSink(ctx, "vmconv_disk_conversion", ereq.Output.Path)
	var res *engine.Result
	if ep.Output.Replaces && hasReport(ereq.Output.Path) {
		// With overwrite = true too: an output this very conversion already
		// made is not made again.
		rep, err := e.Adopt(ep, sink)
		switch {
		case err == nil && rep != nil:
			res = rep.Result
			resp.Diagnostics.AddWarning(summaryOutputAdopted, adoptedDetail(ereq.Output.Path, rep.Created))
		case err != nil && !ereq.Output.Overwrite:
			addFaultAt(&resp.Diagnostics, attributeFor(err), "Converting the disk", err)
			return
		}
	}
	if res == nil {
		if res, err = e.Apply(ctx, ep, sink, engine.ApplyOptions{}); err != nil {
			addFaultAt(&resp.Diagnostics, attributeFor(err), "Converting the disk", err)
			return
		}
	}
	// What the plan showed stays what state says was planned (Terraform
	// requires it); the re-plan above fills what the plan left unknown.
	planned := plan
	setPlanned(ctx, &plan, ep, &resp.Diagnostics)
	keepKnown(&plan.EstimatedSize, planned.EstimatedSize)
	keepKnownList(&plan.PlannedStages, planned.PlannedStages)
	keepKnownList(&plan.PlannedFixes, planned.PlannedFixes)
	keepKnownList(&plan.PlanWarnings, planned.PlanWarnings)
	if !planned.PlannedFirmware.IsUnknown() {
		plan.PlannedFirmware = planned.PlannedFirmware
	}
	writePlanFile(ctx, &plan, ep, &resp.Diagnostics)
	setApplied(&plan, res)
	for _, w := range res.Warnings {
		resp.Diagnostics.AddWarning("Conversion Warning", w)
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
	resp.Diagnostics.Append(setStamp(ctx, resp.Private, res.Output.Stamp)...)
}

func (r *diskConversionResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var state diskConversionModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, d := state.Timeouts.Read(ctx, defaultReadTimeout)
	resp.Diagnostics.Append(d...)
	_, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	var stamp fingerprint.Stamp
	if state.Output == nil {
		// After terraform import: rebuild the state from the report.
		rep, err := engine.ReadReport(state.ID.ValueString())
		if err != nil {
			resp.Diagnostics.AddError(summaryImport, importDetail(state.ID.ValueString(), err))
			return
		}
		stateFromReport(ctx, &state, rep, &resp.Diagnostics)
		stamp = rep.Result.Output.Stamp
		resp.Diagnostics.Append(setStamp(ctx, resp.Private, stamp)...)
	} else {
		raw, d := req.Private.GetKey(ctx, privStamp)
		resp.Diagnostics.Append(d...)
		if err := json.Unmarshal(raw, &stamp); err != nil || len(raw) == 0 {
			if rep, err := engine.ReadReport(state.Output.Path.ValueString()); err == nil {
				stamp = rep.Result.Output.Stamp
			}
		}
	}
	outPath := state.Output.Path.ValueString()
	drift, err := engine.CheckOutput(outPath, stamp)
	if err != nil {
		resp.Diagnostics.AddAttributeError(path.Root("output").AtName("path"), "Cannot Check Output",
			fmt.Sprintf("Reading the output to detect changes failed.\n\nFile: %s\nError: %v", outPath, err))
		return
	}
	switch drift {
	case engine.DriftMissing:
		tflog.Warn(ctx, "output is missing; removing from state so the next plan recreates it", map[string]any{"path": outPath})
		resp.State.RemoveResource(ctx)
		return
	case engine.DriftChanged:
		resp.Diagnostics.Append(resp.Private.SetKey(ctx, privDrift, []byte(`"changed"`))...)
	default:
		resp.Diagnostics.Append(resp.Private.SetKey(ctx, privDrift, nil)...)
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
}

func (r *diskConversionResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	// Only settings that do not change the output's bytes reach Update
	// (overwrite, allow_parent_cid_mismatch, boot_test, timeouts); the rest
	// replaces the resource. A changed boot test runs again on the output.
	var plan, state diskConversionModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if !plan.BootTest.equal(state.BootTest) {
		if r.data == nil {
			resp.Diagnostics.AddError(summaryUnconfigured, unconfiguredDetail("updating a conversion"))
			return
		}
		timeout, d := plan.Timeouts.Update(ctx, defaultCreateTimeout)
		resp.Diagnostics.Append(d...)
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		res, err := r.rerunBootTest(ctx, &plan)
		if err != nil {
			addFault(&resp.Diagnostics, "Running the boot test again", err)
			return
		}
		plan.BootTestResult = bootResultValue(res)
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

// rerunBootTest boots the existing output with the planned settings.
func (r *diskConversionResource) rerunBootTest(ctx context.Context, m *diskConversionModel) (*validate.Result, error) {
	if m.BootTest == nil || !m.BootTest.Enabled.ValueBool() {
		return nil, nil
	}
	out := toRequest(m).Output
	rep, err := engine.ReadReport(out.Path)
	if err != nil {
		return nil, fault.Wrap(fault.InvalidRequest, output.ReportPath(out.Path), err, "the boot test needs the report written beside the output")
	}
	if !rep.Result.Guest.HasOS() {
		return nil, nil
	}
	res, err := r.data.engine.BootTest(ctx, out.Path, engine.QemuFormat(out.Format), rep.Result.Guest, bootOptions(m.BootTest), output.BootLogPath(out.Path))
	if err != nil {
		return nil, err
	}
	if !res.Passed() {
		return nil, engine.BootTestError(res, engine.RerunSite(rep))
	}
	rep.Result.BootTest = res
	if err := engine.WriteReport(out.Path, rep); err != nil {
		return nil, err
	}
	return res, nil
}

func (r *diskConversionResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var state diskConversionModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() || state.Output == nil {
		return
	}
	outPath := state.Output.Path.ValueString()
	if abs, err := filepath.Abs(outPath); err == nil {
		outPath = abs
	}
	if holders, err := engine.DiskHolders(outPath); err == nil && len(holders) > 0 {
		addFaultAt(&resp.Diagnostics, path.Root("output").AtName("path"), "Deleting the converted disk",
			fault.New(fault.DiskInUse, outPath, "the disk is in use by domain %s, which runs on an overlay of it", strings.Join(holders, ", ")).
				WithHint("Destroy the domain first (Terraform does, when the domain refers to this conversion's output.path). A disk a running guest depends on is never deleted under it."))
		return
	}
	if _, err := os.Stat(filepath.Dir(outPath)); errors.Is(err, fs.ErrNotExist) {
		return // the whole folder is gone: nothing left to delete
	}
	// Under the output's lock, so a conversion writing the path is never
	// deleted under; releasing it removes the lock file too.
	lock, err := output.Acquire(outPath)
	if err != nil {
		addFaultAt(&resp.Diagnostics, path.Root("output").AtName("path"), "Deleting the converted disk", err)
		return
	}
	defer lock.Release()
	for _, p := range []string{outPath, output.ReportPath(outPath), output.BootLogPath(outPath)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			resp.Diagnostics.AddError("Cannot Delete Output", fmt.Sprintf("Removing a file of the conversion failed.\n\nFile: %s\nError: %v", p, err))
			return
		}
	}
	os.RemoveAll(output.HivesPath(outPath)) // a Windows guest's hive backups
	lock.CleanStale()
}

func (r *diskConversionResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	id := req.ID
	if abs, err := filepath.Abs(id); err == nil {
		id = abs
	}
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("id"), id)...)
}

// knownInputs reports whether every input the engine needs is known.
func knownInputs(m *diskConversionModel) bool {
	if m.Source == nil || m.Output == nil {
		return false
	}
	if m.Source.OVA != nil && (m.Source.OVA.Path.IsUnknown() || m.Source.OVA.URL.IsUnknown() || m.Source.OVA.SHA256.IsUnknown() || m.Source.OVA.Disk.IsUnknown()) {
		return false
	}
	if x := m.Source.ESXi; x != nil && (x.Host.IsUnknown() || x.User.IsUnknown() || x.HostKey.IsUnknown() || x.Path.IsUnknown()) {
		return false
	}
	if v := m.Source.VSphere; v != nil && (v.URL.IsUnknown() || v.VM.IsUnknown() || v.Datacenter.IsUnknown() || v.Disk.IsUnknown() || v.Snapshot.IsUnknown()) {
		return false
	}
	if u := m.Source.URL; u != nil && (u.Href.IsUnknown() || u.SHA256.IsUnknown() || !mapKnown(u.Headers)) {
		return false
	}
	vals := []attr.Value{m.Source.Path, m.Source.Format, m.Source.AllowParentCIDMismatch, m.Output.Path, m.Output.Format, m.Output.Compression, m.Output.Overwrite}
	if m.Fixes != nil {
		vals = append(vals, m.Fixes.Enabled, m.Fixes.Disabled, m.Fixes.DryRun)
	}
	for _, v := range vals {
		if v.IsUnknown() {
			return false
		}
	}
	return true
}

func toRequest(m *diskConversionModel) engine.Request {
	out := m.Output.Path.ValueString()
	if abs, err := filepath.Abs(out); err == nil {
		out = abs
	}
	req := engine.Request{
		Source: engine.SourceSpec{
			Path:                   m.Source.Path.ValueString(),
			OVA:                    m.Source.OVA.path(),
			OVAURL:                 m.Source.OVA.urlSpec(),
			OVADisk:                m.Source.OVA.disk(),
			URL:                    m.Source.URL.spec(),
			VSphere:                m.Source.VSphere.spec(),
			ESXi:                   m.Source.ESXi.spec(),
			Format:                 m.Source.Format.ValueString(),
			AllowParentCIDMismatch: m.Source.AllowParentCIDMismatch.ValueBool(),
		},
		Output: engine.OutputSpec{
			Path:        out,
			Format:      m.Output.Format.ValueString(),
			Compression: m.Output.Compression.ValueBool(),
			Overwrite:   m.Output.Overwrite.ValueBool(),
		},
	}
	if f := m.Fixes; f != nil {
		req.Fixes.Enabled = f.Enabled.ValueBool()
		req.Fixes.DryRun = f.DryRun.ValueBool()
		var d diag.Diagnostics
		req.Fixes.Disabled = setToStrings(context.Background(), f.Disabled, &d)
		req.Fixes.FstabMode = f.FstabMode.ValueString()
		req.Fixes.KeepNetworkIdentity = f.KeepNetworkIdentity.ValueBool()
		req.Fixes.KeepVMwareTools = f.KeepVMwareTools.ValueBool()
		if f.Windows != nil {
			req.Fixes.VirtioWin = f.Windows.VirtioWin.ValueString()
		}
	}
	if m.Inspect != nil {
		req.Inspect.Root = m.Inspect.Root.ValueString()
	}
	if b := m.BootTest; b != nil {
		req.BootTest.Enabled = b.Enabled.ValueBool()
		req.BootTest.Options = bootOptions(b)
	}
	return req
}

func bootOptions(b *bootTestModel) validate.Options {
	o := validate.Options{
		MemoryMiB: int(b.Memory.ValueInt64()), CPUs: int(b.CPUs.ValueInt64()),
		SuccessPattern: b.SuccessPattern.ValueString(), DiskBus: b.DiskBus.ValueString(), NICModel: b.NICModel.ValueString(),
		MAC: b.MAC.ValueString(), RequireNetwork: b.RequireNetwork.ValueBool(), FirmwareBootEntry: b.FirmwareBootEntry.ValueString(),
	}
	if d, err := time.ParseDuration(b.Timeout.ValueString()); err == nil {
		o.Timeout = d
	}
	return o
}

// setPlanned fills the attributes the engine's plan determines.
func setPlanned(ctx context.Context, m *diskConversionModel, p *engine.Plan, diags interface{ Append(...diagDiagnostic) }) {
	m.ID = types.StringValue(p.Output.Path)
	m.SourceFormat = types.StringValue(p.Source.Format)
	chain, d := types.ListValueFrom(ctx, types.StringType, p.Source.ChainPaths())
	diags.Append(d...)
	m.Chain = chain
	m.VirtualSize = types.Int64Value(p.Source.VirtualSize)
	m.SourceFingerprint = types.StringValue(p.Source.Fingerprint)
	m.ReportPath = types.StringValue(output.ReportPath(p.Output.Path))
	m.EstimatedSize = types.Int64Value(p.Output.EstimatedSize)
	var stages []string
	for _, st := range p.Stages {
		if st.Run {
			stages = append(stages, string(st.Name)+": "+st.Reason)
		}
	}
	m.PlannedStages = strList(stages)
	m.PlanWarnings = strList(p.Warnings)
	m.PlannedFixes, m.PlannedFirmware = types.ListNull(types.ObjectType{AttrTypes: plannedFixAttrTypes}), types.StringNull()
	if g := p.Guest; g != nil && g.How != "skipped" {
		m.PlannedFixes = plannedFixesValue(g.Changes)
		if f := p.Firmware(); f != "" {
			m.PlannedFirmware = types.StringValue(f)
		}
	}
}

var plannedFixAttrTypes = map[string]attr.Type{
	"fix": types.StringType, "action": types.StringType, "path": types.StringType, "command": types.StringType, "reason": types.StringType,
}

func plannedFixesValue(cs []guest.Change) types.List {
	elem := types.ObjectType{AttrTypes: plannedFixAttrTypes}
	vals := make([]attr.Value, 0, len(cs))
	for _, c := range cs {
		vals = append(vals, types.ObjectValueMust(plannedFixAttrTypes, map[string]attr.Value{
			"fix": types.StringValue(c.Fix), "action": types.StringValue(c.Action), "path": types.StringValue(c.Path),
			"command": types.StringValue(c.Command), "reason": types.StringValue(c.Reason),
		}))
	}
	return types.ListValueMust(elem, vals)
}

// writePlanFile writes the engine's plan where plan_path asks.
func writePlanFile(ctx context.Context, m *diskConversionModel, p *engine.Plan, diags *diag.Diagnostics) {
	if m.PlanPath.IsNull() || m.PlanPath.IsUnknown() || m.PlanPath.ValueString() == "" {
		return
	}
	b, err := p.JSON()
	if err == nil {
		err = output.WriteAtomic(m.PlanPath.ValueString(), append(b, '\n'), 0o644)
	}
	if err != nil {
		diags.AddAttributeWarning(path.Root("plan_path"), "Cannot Write The Plan File",
			fmt.Sprintf("The engine's plan could not be written.\n\nFile: %s\nError: %v", m.PlanPath.ValueString(), err))
		return
	}
	tflog.Info(ctx, "wrote the engine plan", map[string]any{"path": m.PlanPath.ValueString()})
}

func setApplied(m *diskConversionModel, r *engine.Result) {
	m.OutputSize = types.Int64Value(r.Output.Size)
	m.OutputSHA256 = types.StringValue(r.Output.SHA256)
	m.ReportPath = types.StringValue(r.Output.ReportPath)
	m.FixesApplied = changesValue(r.Fixes)
	m.BootTestResult = bootResultValue(r.BootTest)
	m.Guest = guestValue(r.Guest)
}

type privateSetter interface {
	SetKey(ctx context.Context, key string, value []byte) diagDiagnostics
}

func setStamp(ctx context.Context, p privateSetter, s fingerprint.Stamp) diagDiagnostics {
	b, _ := json.Marshal(s)
	return p.SetKey(ctx, privStamp, b)
}

func stateFromReport(ctx context.Context, m *diskConversionModel, rep *engine.Report, diags interface{ Append(...diagDiagnostic) }) {
	req := rep.Plan.Request
	m.Source = &sourceModel{
		Path:                   types.StringValue(req.Source.Path),
		Format:                 types.StringNull(),
		AllowParentCIDMismatch: types.BoolValue(req.Source.AllowParentCIDMismatch),
	}
	if req.Source.Format != "" {
		m.Source.Format = types.StringValue(req.Source.Format)
	}
	if x := req.Source.ESXi; x != nil {
		m.Source.Path = types.StringNull()
		m.Source.ESXi = &esxiModel{Host: types.StringValue(x.Host), User: types.StringValue(x.User), PrivateKey: types.StringNull(),
			HostKey: types.StringValue(x.HostKey), Path: types.StringValue(x.Path)}
	}
	if v := req.Source.VSphere; v != nil {
		m.Source.Path = types.StringNull()
		snap := "none"
		if v.Snapshot {
			snap = "create"
		}
		m.Source.VSphere = &vsphereModel{URL: types.StringValue(v.URL), Datacenter: types.StringValue(v.Datacenter), VM: types.StringValue(v.VM),
			Disk: types.Int64Value(int64(v.Disk)), Snapshot: types.StringValue(snap), Thumbprint: types.StringNull(), Insecure: types.BoolNull()}
		if v.Datacenter == "" {
			m.Source.VSphere.Datacenter = types.StringNull()
		}
		if v.Thumbprint != "" {
			m.Source.VSphere.Thumbprint = types.StringValue(v.Thumbprint)
		}
		if v.Insecure {
			m.Source.VSphere.Insecure = types.BoolValue(true)
		}
	}
	if req.Source.URL != nil {
		// The report holds the URL redacted and no headers: an imported
		// URL conversion shows the redacted URL.
		m.Source.Path = types.StringNull()
		m.Source.URL = &urlModel{Href: types.StringValue(req.Source.URL.Shown), SHA256: types.StringNull(), Headers: types.MapNull(types.StringType)}
		if req.Source.URL.SHA256 != "" {
			m.Source.URL.SHA256 = types.StringValue(req.Source.URL.SHA256)
		}
	}
	if req.Source.OVA != "" {
		m.Source.Path = types.StringNull()
		m.Source.OVA = &ovaModel{Path: types.StringValue(req.Source.OVA), URL: types.StringNull(), SHA256: types.StringNull(), Disk: types.Int64Value(int64(req.Source.OVADisk))}
	}
	if u := req.Source.OVAURL; u != nil {
		m.Source.Path = types.StringNull()
		m.Source.OVA = &ovaModel{Path: types.StringNull(), URL: types.StringValue(u.Shown), SHA256: types.StringNull(), Disk: types.Int64Value(int64(req.Source.OVADisk))}
		if u.SHA256 != "" {
			m.Source.OVA.SHA256 = types.StringValue(u.SHA256)
		}
	}
	m.Output = &outputModel{
		Path:        types.StringValue(req.Output.Path),
		Format:      types.StringValue(req.Output.Format),
		Compression: types.BoolValue(req.Output.Compression),
		Overwrite:   types.BoolValue(req.Output.Overwrite),
	}
	m.Fixes = &fixesModel{
		Enabled: types.BoolValue(req.Fixes.Enabled), DryRun: types.BoolValue(req.Fixes.DryRun),
		Disabled: setOf(req.Fixes.Disabled), FstabMode: types.StringValue(orDefault(req.Fixes.FstabMode, fix.FstabStabilizeAll)),
		KeepNetworkIdentity: types.BoolValue(req.Fixes.KeepNetworkIdentity), KeepVMwareTools: types.BoolValue(req.Fixes.KeepVMwareTools),
	}
	if req.Fixes.VirtioWin != "" {
		m.Fixes.Windows = &windowsFixes{VirtioWin: types.StringValue(req.Fixes.VirtioWin)}
	}
	if req.Inspect.Root != "" {
		m.Inspect = &inspectModel{Root: types.StringValue(req.Inspect.Root)}
	}
	b := req.BootTest
	m.BootTest = &bootTestModel{
		Enabled: types.BoolValue(b.Enabled), Timeout: nullIfEmpty(durationString(b.Timeout)),
		Memory: types.Int64Value(int64(orInt(b.MemoryMiB, 1024))), CPUs: types.Int64Value(int64(orInt(b.CPUs, 2))),
		SuccessPattern: nullIfEmpty(b.SuccessPattern), DiskBus: types.StringValue(orDefault(b.DiskBus, "virtio")),
		NICModel: types.StringValue(orDefault(b.NICModel, "virtio")), MAC: nullIfEmpty(b.MAC),
		RequireNetwork: types.BoolValue(b.RequireNetwork), FirmwareBootEntry: nullIfEmpty(b.FirmwareBootEntry),
	}
	m.Timeouts = timeouts.Value{Object: types.ObjectNull(map[string]attr.Type{
		"create": types.StringType, "read": types.StringType, "update": types.StringType, "delete": types.StringType,
	})}
	setPlanned(ctx, m, rep.Plan, diags)
	setApplied(m, rep.Result)
}

func setOf(xs []string) types.Set {
	vals := make([]attr.Value, len(xs))
	for i, x := range xs {
		vals[i] = types.StringValue(x)
	}
	return types.SetValueMust(types.StringType, vals)
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func orInt(v, d int) int {
	if v == 0 {
		return d
	}
	return v
}

func nullIfEmpty(s string) types.String {
	if s == "" {
		return types.StringNull()
	}
	return types.StringValue(s)
}

func durationString(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return d.String()
}

func hasReport(outputPath string) bool {
	_, err := os.Stat(output.ReportPath(outputPath))
	return err == nil
}

func importDetail(id string, err error) string {
	return fmt.Sprintf("Importing reads the report vmconv writes beside each output (%s), which records the source and settings of the conversion. "+
		"It could not be read.\n\nFile: %s\nError: %v\n\nImport by the absolute path of an output written by vmconv.", output.ReportSuffix, output.ReportPath(id), err)
}

// attributeFor points a fault at the attribute the user should look at.
func attributeFor(err error) path.Path {
	switch fault.CodeOf(err) {
	case fault.OutputDirMissing, fault.OutputIsSource, fault.OutputExists, fault.OutputLocked, fault.OutputNotWritable, fault.NoSpace:
		return path.Root("output").AtName("path")
	case fault.ChainCIDMismatch:
		return path.Root("source").AtName("allow_parent_cid_mismatch")
	default:
		return path.Root("source").AtName("path")
	}
}

func sourceChangeDetail(last *engine.PlanRecord, p *engine.Plan) string {
	return fmt.Sprintf("The source disk is not what it was when this conversion was last planned (%s). "+
		"If you are applying a saved plan, Terraform will reject it as an \"inconsistent final plan\": that is this change. Run terraform plan again.\n\n"+
		"Previous fingerprint: %s\nCurrent fingerprint: %s\nPrevious chain: %s\nCurrent chain: %s",
		last.At.Format(time.RFC3339), last.Fingerprint, p.Source.Fingerprint, strings.Join(last.Chain, ", "), strings.Join(p.Source.ChainPaths(), ", "))
}

func chainChange(state *diskConversionModel, p *engine.Plan) string {
	var old []string
	state.Chain.ElementsAs(context.Background(), &old, false)
	now := p.Source.ChainPaths()
	switch {
	case len(now) > len(old):
		return fmt.Sprintf("New snapshot layer(s): the chain grew from %d to %d files (newest: %s).", len(old), len(now), now[0])
	case len(now) < len(old):
		return fmt.Sprintf("The chain shrank from %d to %d files (snapshots consolidated or removed).", len(old), len(now))
	case strings.Join(old, "\n") != strings.Join(now, "\n"):
		return fmt.Sprintf("The chain's files changed: was %s, now %s.", strings.Join(old, ", "), strings.Join(now, ", "))
	}
	return fmt.Sprintf("A file of the chain was modified (content or modification time).\n\nPrevious fingerprint: %s\nCurrent fingerprint: %s",
		state.SourceFingerprint.ValueString(), p.Source.Fingerprint)
}

func keepKnown(dst *types.Int64, planned types.Int64) {
	if !planned.IsUnknown() {
		*dst = planned
	}
}

func keepKnownList(dst *types.List, planned types.List) {
	if !planned.IsUnknown() {
		*dst = planned
	}
}

func (o *ovaModel) path() string {
	if o == nil {
		return ""
	}
	return o.Path.ValueString()
}

func (o *ovaModel) urlSpec() *engine.URLSpec {
	if o == nil || o.URL.ValueString() == "" {
		return nil
	}
	return &engine.URLSpec{Href: o.URL.ValueString(), SHA256: o.SHA256.ValueString()}
}

func (o *ovaModel) disk() int {
	if o == nil {
		return 0
	}
	return int(o.Disk.ValueInt64())
}

func (u *urlModel) spec() *engine.URLSpec {
	if u == nil {
		return nil
	}
	spec := &engine.URLSpec{Href: u.Href.ValueString(), SHA256: u.SHA256.ValueString(), Headers: map[string]string{}}
	for k, v := range u.Headers.Elements() {
		if sv, ok := v.(types.String); ok {
			spec.Headers[k] = sv.ValueString()
		}
	}
	return spec
}

func mapKnown(m types.Map) bool {
	if m.IsUnknown() {
		return false
	}
	for _, v := range m.Elements() {
		if v.IsUnknown() {
			return false
		}
	}
	return true
}

// withConfigHeaders takes source.url.headers from the configuration: they
// are write-only, so the plan and state never hold them.
func withConfigHeaders(ctx context.Context, cfg tfsdk.Config, ereq *engine.Request, diags *diag.Diagnostics) {
	if ereq.Source.ESXi != nil {
		// private_key is write-only too.
		var k types.String
		diags.Append(cfg.GetAttribute(ctx, path.Root("source").AtName("esxi_ssh").AtName("private_key"), &k)...)
		ereq.Source.ESXi.PrivateKey = k.ValueString()
	}
	if ereq.Source.URL == nil {
		return
	}
	var h types.Map
	diags.Append(cfg.GetAttribute(ctx, path.Root("source").AtName("url").AtName("headers"), &h)...)
	ereq.Source.URL.Headers = map[string]string{}
	for k, v := range h.Elements() {
		if sv, ok := v.(types.String); ok {
			ereq.Source.URL.Headers[k] = sv.ValueString()
		}
	}
}

func (v *vsphereModel) spec() *engine.VSphereSpec {
	if v == nil {
		return nil
	}
	return &engine.VSphereSpec{URL: v.URL.ValueString(), Datacenter: v.Datacenter.ValueString(), VM: v.VM.ValueString(), Disk: int(v.Disk.ValueInt64()),
		Snapshot: v.Snapshot.ValueString() != "none", Thumbprint: v.Thumbprint.ValueString(), Insecure: v.Insecure.ValueBool()}
}

// withCredentials gives a vSphere source the provider's credentials, which
// the request never carries into plans or reports.
func (r *diskConversionResource) withCredentials(ereq *engine.Request) {
	if v := ereq.Source.VSphere; v != nil {
		v.Username, v.Password = r.data.vsphereUser, r.data.vspherePassword
	}
}

func (x *esxiModel) spec() *engine.ESXiSpec {
	if x == nil {
		return nil
	}
	return &engine.ESXiSpec{Host: x.Host.ValueString(), User: x.User.ValueString(), HostKey: x.HostKey.ValueString(), Path: x.Path.ValueString()}
}
