// Package provider is the Terraform adapter over the vmconv engine: schema,
// plan modifiers and diagnostics. All conversion logic lives in engine/.
package provider

import (
	"context"
	"fmt"
	"os"
	"strconv"

	"github.com/hashicorp/terraform-plugin-framework-validators/int64validator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/provider"
	"github.com/hashicorp/terraform-plugin-framework/provider/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/vmconv/terraform-provider-vmconv/engine"
)

var _ provider.Provider = &vmconvProvider{}

// New returns a provider factory for providerserver.Serve and tests.
func New(version string) func() provider.Provider {
	return func() provider.Provider {
		return &vmconvProvider{version: version}
	}
}

type vmconvProvider struct {
	version string
}

type vmconvProviderModel struct {
	MaxParallelConversions types.Int64  `tfsdk:"max_parallel_conversions"`
	WorkDir                types.String `tfsdk:"work_dir"`
	CacheDir               types.String `tfsdk:"cache_dir"`
	Accel                  types.String `tfsdk:"accel"`
	FirmwareDir            types.String `tfsdk:"firmware_dir"`
	URI                    types.String `tfsdk:"uri"`
	SSHKeyFile             types.String `tfsdk:"ssh_key_file"`
	SSHKnownHostsFile      types.String `tfsdk:"ssh_known_hosts_file"`
	MaxParallelUploads     types.Int64  `tfsdk:"max_parallel_uploads"`
	DomainDir              types.String `tfsdk:"domain_dir"`
	PlanInspection         types.Bool   `tfsdk:"plan_inspection"`
	PlanFetch              types.Bool   `tfsdk:"plan_fetch"`
	VSphereUser            types.String `tfsdk:"vsphere_username"`
	VSpherePassword        types.String `tfsdk:"vsphere_password"`
}

// providerData is what resources receive from Configure.
type providerData struct {
	engine *engine.Engine
	// planInspection lets plans launch the appliance to preview fixes.
	planInspection bool
	// planFetch lets plans download remote sources.
	planFetch bool
	// vSphere credentials; the password is never logged.
	vsphereUser, vspherePassword string
	// planned hands ModifyPlan's engine plans to Create.
	planned plannedConversions
}

// Environment variables read when an attribute is not set.
const (
	envMaxParallel = "VMCONV_MAX_PARALLEL_CONVERSIONS"
	envWorkDir     = "VMCONV_WORK_DIR"
	envCacheDir    = "VMCONV_CACHE_DIR"
	envAccel       = "VMCONV_ACCEL"
	envFirmwareDir = "VMCONV_FIRMWARE_DIR"
	envLibvirtURI  = "LIBVIRT_DEFAULT_URI"
	envDomainDir   = "VMCONV_DOMAIN_DIR"
	envPlanInspect = "VMCONV_PLAN_INSPECTION"
	envPlanFetch   = "VMCONV_PLAN_FETCH"
	envSSHKey      = "VMCONV_SSH_KEY_FILE"
	envKnownHosts  = "VMCONV_SSH_KNOWN_HOSTS_FILE"
	envMaxUploads  = "VMCONV_MAX_PARALLEL_UPLOADS"
)

func (p *vmconvProvider) Metadata(_ context.Context, _ provider.MetadataRequest, resp *provider.MetadataResponse) {
	resp.TypeName = "vmconv"
	resp.Version = p.version
}

func (p *vmconvProvider) Schema(_ context.Context, _ provider.SchemaRequest, resp *provider.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "The vmconv provider migrates VMware, Hyper-V and VirtualBox disks to KVM. " +
			"`terraform plan` shows what each migration will do before a byte moves; `terraform apply` converts the disk.\n\n" +
			"Every setting can also come from an environment variable, read when the attribute is not set.",
		Attributes: map[string]schema.Attribute{
			"max_parallel_conversions": schema.Int64Attribute{
				Optional: true,
				MarkdownDescription: "How many conversions run at once. Terraform may start more resources in parallel; the extra ones wait. " +
					"Default: half the CPUs, between 1 and 4. Environment: `" + envMaxParallel + "`.",
				Validators: []validator.Int64{int64validator.Between(1, 64)},
			},
			"work_dir": schema.StringAttribute{
				Optional: true,
				MarkdownDescription: "Folder for scratch files during a conversion (overlays, shadow descriptors). " +
					"Default: `vmconv` under the system temporary folder. Environment: `" + envWorkDir + "`.",
			},
			"cache_dir": schema.StringAttribute{
				Optional:            true,
				MarkdownDescription: "Folder for results kept between runs (the KVM probe's verdict, inspections). Default: `vmconv` under the user cache folder. Environment: `" + envCacheDir + "`.",
			},
			"accel": schema.StringAttribute{
				Optional: true,
				MarkdownDescription: "How guests run for inspection, fixes and boot tests: `kvm`, `tcg` (software emulation) or `auto` (default). " +
					"`auto` boots a kernel under KVM with a deadline and uses KVM only if it works: where nested KVM hangs guests, opening /dev/kvm succeeds but guests never boot. " +
					"The verdict is cached. Environment: `" + envAccel + "`.",
				Validators: []validator.String{stringvalidator.OneOf("auto", "kvm", "tcg")},
			},
			"uri": schema.StringAttribute{
				Optional: true,
				MarkdownDescription: "libvirt connection URI of the KVM host: where `vmconv_kvm_domain` defines domains and where `output.pool` volumes are published, " +
					"for example `qemu+ssh://root@kvm1.example/system`. Default `" + engine.DefaultLibvirtURI + "`. Environment: `" + envLibvirtURI + "`. " +
					"The provider connects only when a resource first needs libvirt, so converting disks to files needs no libvirtd. " +
					"Over `qemu+ssh://`, ssh never prompts: the host key must be known (`ssh_known_hosts_file`, or ssh's own files) and the key authorized. " +
					"A password in the URI is refused. Use one provider alias per host to spread VMs over a fleet.",
			},
			"ssh_key_file": schema.StringAttribute{
				Optional: true,
				MarkdownDescription: "Private key file for a `qemu+ssh://` `uri` (passed to libvirt as `keyfile`; the key itself is never read by vmconv, logged or stored). " +
					"Default: ssh's own keys and agent. Environment: `" + envSSHKey + "`.",
			},
			"ssh_known_hosts_file": schema.StringAttribute{
				Optional: true,
				MarkdownDescription: "known_hosts file that pins the host key of a `qemu+ssh://` `uri`. A host whose key is missing from it or different is refused. " +
					"Default: ssh's own files (`~/.ssh/known_hosts`, `/etc/ssh/ssh_known_hosts`), also checked strictly. Environment: `" + envKnownHosts + "`.",
			},
			"max_parallel_uploads": schema.Int64Attribute{
				Optional: true,
				MarkdownDescription: "How many `output.pool` uploads to this provider's host run at once; the others wait, converted. " +
					"Default " + strconv.Itoa(engine.DefaultMaxUploads) + ". Environment: `" + envMaxUploads + "`. See the fleet guide for measured throughput.",
				Validators: []validator.Int64{int64validator.Between(1, 64)},
			},
			"domain_dir": schema.StringAttribute{
				Optional: true,
				MarkdownDescription: "Folder for the disks domains own (an overlay on each converted image). It must be readable by the user libvirt runs QEMU as. " +
					"Default `" + engine.DefaultDomainDir + "`. Environment: `" + envDomainDir + "`.",
			},
			"plan_inspection": schema.BoolAttribute{
				Optional: true,
				MarkdownDescription: "Whether `terraform plan` may inspect guests (a libguestfs appliance launch, about 15-30 seconds) to preview the firmware and the fixes " +
					"(`planned_fixes`). Each inspection is cached by the source's fingerprint and the fix options, so later plans are fast. " +
					"With `false`, plans decide from metadata alone and the guest is inspected at apply. Default `true`. Environment: `" + envPlanInspect + "`.",
			},
			"vsphere_username": schema.StringAttribute{
				Optional:            true,
				MarkdownDescription: "User for vCenter or ESXi (`vmconv_vsphere_vm`). Environment: `VSPHERE_USER`.",
			},
			"vsphere_password": schema.StringAttribute{
				Optional: true, Sensitive: true,
				MarkdownDescription: "Password for vCenter or ESXi. Sensitive; never logged. Environment: `VSPHERE_PASSWORD`.",
			},
			"plan_fetch": schema.BoolAttribute{
				Optional: true,
				MarkdownDescription: "Whether `terraform plan` may download remote sources (`source.url`) into the cache, so that they are planned like local disks " +
					"(format, chain, size estimate, inspection). Default `false`: remote sources are planned from the server's metadata, and downloaded at apply. " +
					"Environment: `" + envPlanFetch + "`.",
			},
			"firmware_dir": schema.StringAttribute{
				Optional:            true,
				MarkdownDescription: "Folder holding the OVMF UEFI firmware (`OVMF_CODE_4M.fd` and `OVMF_VARS_4M.fd`, or the 2 MiB pair). Default `/usr/share/OVMF`. Environment: `" + envFirmwareDir + "`.",
			},
		},
	}
}

func (p *vmconvProvider) Configure(ctx context.Context, req provider.ConfigureRequest, resp *provider.ConfigureResponse) {
	var cfg vmconvProviderModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &cfg)...)
	if resp.Diagnostics.HasError() {
		return
	}
	ec := engine.Config{
		WorkDir:     stringSetting(cfg.WorkDir, envWorkDir),
		CacheDir:    stringSetting(cfg.CacheDir, envCacheDir),
		Accel:       stringSetting(cfg.Accel, envAccel),
		FirmwareDir: stringSetting(cfg.FirmwareDir, envFirmwareDir),
		LibvirtURI:  stringSetting(cfg.URI, envLibvirtURI),
		DomainDir:   stringSetting(cfg.DomainDir, envDomainDir),

		SSHKeyFile:    stringSetting(cfg.SSHKeyFile, envSSHKey),
		SSHKnownHosts: stringSetting(cfg.SSHKnownHostsFile, envKnownHosts),
	}
	if a := ec.Accel; a != "" && a != "auto" && a != "kvm" && a != "tcg" {
		resp.Diagnostics.AddAttributeError(path.Root("accel"), "Invalid Environment Setting", envAccel+" must be auto, kvm or tcg, got "+strconv.Quote(a)+".")
		return
	}
	switch {
	case !cfg.MaxParallelConversions.IsNull() && !cfg.MaxParallelConversions.IsUnknown():
		ec.MaxParallel = int(cfg.MaxParallelConversions.ValueInt64())
	case os.Getenv(envMaxParallel) != "":
		n, err := strconv.Atoi(os.Getenv(envMaxParallel))
		if err != nil || n < 1 {
			resp.Diagnostics.AddAttributeError(path.Root("max_parallel_conversions"), "Invalid Environment Setting",
				envMaxParallel+" must be a positive whole number, got "+strconv.Quote(os.Getenv(envMaxParallel))+".")
			return
		}
		ec.MaxParallel = n
	}
	switch {
	case !cfg.MaxParallelUploads.IsNull() && !cfg.MaxParallelUploads.IsUnknown():
		ec.MaxUploads = int(cfg.MaxParallelUploads.ValueInt64())
	case os.Getenv(envMaxUploads) != "":
		n, err := strconv.Atoi(os.Getenv(envMaxUploads))
		if err != nil || n < 1 {
			resp.Diagnostics.AddAttributeError(path.Root("max_parallel_uploads"), "Invalid Environment Setting",
				envMaxUploads+" must be a positive whole number, got "+strconv.Quote(os.Getenv(envMaxUploads))+".")
			return
		}
		ec.MaxUploads = n
	}
	e, err := engine.New(ec)
	if err != nil {
		addFault(&resp.Diagnostics, "Starting the vmconv engine", err)
		return
	}
	eff := e.Config()
	tflog.Info(ctx, "vmconv engine ready", map[string]any{
		"max_parallel_conversions": eff.MaxParallel, "work_dir": eff.WorkDir, "cache_dir": eff.CacheDir, "accel": eff.Accel,
	})
	data := &providerData{engine: e,
		vsphereUser: stringSetting(cfg.VSphereUser, "VSPHERE_USER"), vspherePassword: stringSetting(cfg.VSpherePassword, "VSPHERE_PASSWORD")}
	var ok bool
	if data.planInspection, ok = boolSetting(cfg.PlanInspection, envPlanInspect, true, "plan_inspection", &resp.Diagnostics); !ok {
		return
	}
	if data.planFetch, ok = boolSetting(cfg.PlanFetch, envPlanFetch, false, "plan_fetch", &resp.Diagnostics); !ok {
		return
	}
	resp.ResourceData = data
	resp.DataSourceData = data
}

// boolSetting is a boolean attribute, else its environment variable, else
// def; an environment value that is not a boolean is an error on the
// attribute.
func boolSetting(v types.Bool, env string, def bool, attr string, diags *diag.Diagnostics) (bool, bool) {
	if !v.IsNull() && !v.IsUnknown() {
		return v.ValueBool(), true
	}
	if os.Getenv(env) == "" {
		return def, true
	}
	b, err := strconv.ParseBool(os.Getenv(env))
	if err != nil {
		diags.AddAttributeError(path.Root(attr), "Invalid Environment Setting",
			env+" must be true or false, got "+strconv.Quote(os.Getenv(env))+".")
		return false, false
	}
	return b, true
}

// configured is what resources and data sources take from the provider's
// Configure: nil before the provider is configured (validation).
func configured(from any, diags *diag.Diagnostics) *providerData {
	if from == nil {
		return nil
	}
	data, ok := from.(*providerData)
	if !ok {
		diags.AddError("Unexpected Provider Data", fmt.Sprintf("Expected *providerData, got %T. This is a bug in the provider.", from))
	}
	return data
}

func stringSetting(v types.String, env string) string {
	if !v.IsNull() && !v.IsUnknown() {
		return v.ValueString()
	}
	return os.Getenv(env)
}

func (p *vmconvProvider) Resources(_ context.Context) []func() resource.Resource {
	return []func() resource.Resource{
		NewDiskConversionResource,
		NewVMConversionResource,
		NewKVMDomainResource,
	}
}

func (p *vmconvProvider) DataSources(_ context.Context) []func() datasource.DataSource {
	return []func() datasource.DataSource{
		NewDiskInfoDataSource,
		NewVSphereVMDataSource,
	}
}
