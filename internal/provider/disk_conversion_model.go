package provider

import (
	"context"
	"path/filepath"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/tfsdk"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/vmconv/terraform-provider-vmconv/engine"
)

type diskConversionModel struct {
	ID types.String `tfsdk:"id"`
	// Source holds one attribute per source kind (see sourceKinds).
	Source            types.Object   `tfsdk:"source"`
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

type outputModel struct {
	Path        types.String `tfsdk:"path"`
	Pool        types.String `tfsdk:"pool"`
	Volume      types.String `tfsdk:"volume"`
	Format      types.String `tfsdk:"format"`
	Compression types.Bool   `tfsdk:"compression"`
	Overwrite   types.Bool   `tfsdk:"overwrite"`
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

// equal compares what two boot_test blocks mean: a block left out is
// its defaults.
func (b *bootTestModel) equal(o *bootTestModel) bool {
	b, o = effectiveBootTest(b), effectiveBootTest(o)
	return b.Enabled.Equal(o.Enabled) && b.Timeout.Equal(o.Timeout) && b.Memory.Equal(o.Memory) && b.CPUs.Equal(o.CPUs) &&
		b.SuccessPattern.Equal(o.SuccessPattern) && b.DiskBus.Equal(o.DiskBus) && b.NICModel.Equal(o.NICModel) &&
		b.MAC.Equal(o.MAC) && b.RequireNetwork.Equal(o.RequireNetwork) && b.FirmwareBootEntry.Equal(o.FirmwareBootEntry)
}

// knownInputs reports whether every input the engine needs is known: the
// configured source (write-only values included) and the planned settings
// that decide the plan.
func knownInputs(ctx context.Context, m *diskConversionModel, cfg tfsdk.Config) bool {
	if m.Source.IsNull() || m.Source.IsUnknown() || m.Output == nil || !sourceKnown(ctx, cfg) {
		return false
	}
	vals := []attr.Value{m.Output.Path, m.Output.Pool, m.Output.Volume, m.Output.Format, m.Output.Compression, m.Output.Overwrite}
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

// toRequest is the engine request a planned model asks for. Write-only
// source values come from the configuration, credentials from the
// provider.
func toRequest(ctx context.Context, m *diskConversionModel, cfg tfsdk.Config, data *providerData, diags *diag.Diagnostics) engine.Request {
	out := m.Output.Path.ValueString()
	if abs, err := filepath.Abs(out); err == nil && out != "" {
		out = abs
	}
	req := engine.Request{
		Source: sourceSpec(ctx, m.Source, cfg, data, diags),
		Output: engine.OutputSpec{
			Path:        out,
			Format:      m.Output.Format.ValueString(),
			Compression: m.Output.Compression.ValueBool(),
			Overwrite:   m.Output.Overwrite.ValueBool(),
			Pool:        m.Output.Pool.ValueString(),
			Volume:      m.Output.Volume.ValueString(),
		},
	}
	req.Fixes, req.Inspect, req.BootTest = guestWorkSpec(ctx, m.Fixes, m.Inspect, m.BootTest, diags)
	return req
}

func bootOptions(b *bootTestModel) engine.BootTestOptions {
	o := engine.BootTestOptions{
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
func setPlanned(ctx context.Context, m *diskConversionModel, p *engine.Plan, diags *diag.Diagnostics) {
	m.ID = types.StringValue(outputID(p))
	m.SourceFormat = types.StringValue(p.Source.Format)
	chain, d := types.ListValueFrom(ctx, types.StringType, p.Source.ChainPaths())
	diags.Append(d...)
	m.Chain = chain
	m.VirtualSize = types.Int64Value(p.Source.VirtualSize)
	m.SourceFingerprint = types.StringValue(p.Source.Fingerprint)
	m.ReportPath = types.StringValue(engine.ReportPath(p.Output.Path))
	if v := p.Output.Volume; v != nil {
		m.ReportPath = types.StringValue(volumeImportPrefix + v.Pool + "/" + v.Name + engine.VolumeReportSuffix)
	}
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

// setDeferred marks what a remote source's content decides as known after
// apply, for a plan made from the source's metadata.
func setDeferred(m *diskConversionModel) {
	m.SourceFormat, m.VirtualSize, m.EstimatedSize = types.StringUnknown(), types.Int64Unknown(), types.Int64Unknown()
	m.Chain, m.PlannedStages = types.ListUnknown(types.StringType), types.ListUnknown(types.StringType)
	m.PlannedFixes = types.ListUnknown(types.ObjectType{AttrTypes: plannedFixAttrTypes})
	m.PlannedFirmware, m.PlanWarnings = types.StringUnknown(), types.ListUnknown(types.StringType)
}

// keepPlanned restores what the plan showed over what a later engine plan
// says: Terraform requires state to keep every value the plan knew.
func keepPlanned(m *diskConversionModel, planned *diskConversionModel) {
	if !planned.EstimatedSize.IsUnknown() {
		m.EstimatedSize = planned.EstimatedSize
	}
	for _, l := range []struct{ dst, planned *types.List }{
		{&m.PlannedStages, &planned.PlannedStages}, {&m.PlannedFixes, &planned.PlannedFixes}, {&m.PlanWarnings, &planned.PlanWarnings},
	} {
		if !l.planned.IsUnknown() {
			*l.dst = *l.planned
		}
	}
	if !planned.PlannedFirmware.IsUnknown() {
		m.PlannedFirmware = planned.PlannedFirmware
	}
}

func setApplied(m *diskConversionModel, r *engine.Result) {
	m.OutputSize = types.Int64Value(r.Output.Size)
	m.OutputSHA256 = types.StringValue(r.Output.SHA256)
	m.ReportPath = types.StringValue(r.Output.ReportPath)
	if v := r.Output.Volume; v != nil {
		m.ReportPath = types.StringValue(volumeImportPrefix + v.Pool + "/" + v.Name + engine.VolumeReportSuffix)
	}
	m.FixesApplied = changesValue(r.Fixes)
	m.BootTestResult = bootResultValue(r.BootTest)
	m.Guest = guestValue(r.Guest)
}

// stateFromReport rebuilds an imported conversion from its report.
func stateFromReport(ctx context.Context, m *diskConversionModel, rep *engine.Report, diags *diag.Diagnostics) {
	req := rep.Plan.Request
	m.Source = sourceFromSpec(ctx, req.Source, diags)
	m.Output = &outputModel{
		Path:        types.StringValue(req.Output.Path),
		Pool:        types.StringNull(),
		Volume:      types.StringNull(),
		Format:      types.StringValue(req.Output.Format),
		Compression: types.BoolValue(req.Output.Compression),
		Overwrite:   types.BoolValue(req.Output.Overwrite),
	}
	if req.Output.Pool != "" {
		m.Output.Path = types.StringNull()
		m.Output.Pool, m.Output.Volume = types.StringValue(req.Output.Pool), types.StringValue(req.Output.Volume)
	}
	m.Fixes, m.Inspect, m.BootTest = guestWorkFromSpec(req)
	m.Timeouts = nullTimeouts()
	setPlanned(ctx, m, rep.Plan, diags)
	setApplied(m, rep.Result)
}

// volumeImportPrefix marks a pool output's ID: "volume:<pool>/<volume>".
const volumeImportPrefix = "volume:"

// outputID is a conversion's ID: its absolute output path, or
// "volume:<pool>/<volume>" for a pool output.
func outputID(p *engine.Plan) string {
	if v := p.Output.Volume; v != nil {
		return volumeImportPrefix + v.Pool + "/" + v.Name
	}
	return p.Output.Path
}
