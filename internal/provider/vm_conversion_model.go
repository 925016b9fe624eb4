package provider

import (
	"context"
	"path/filepath"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/tfsdk"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/vmconv/terraform-provider-vmconv/engine"
)

type vmConversionModel struct {
	ID types.String `tfsdk:"id"`
	// Source holds one attribute per VM source kind (see vmSourceKinds).
	Source            types.Object   `tfsdk:"source"`
	Output            *vmOutputModel `tfsdk:"output"`
	Fixes             *fixesModel    `tfsdk:"fixes"`
	Inspect           *inspectModel  `tfsdk:"inspect"`
	BootTest          *bootTestModel `tfsdk:"boot_test"`
	Timeouts          timeouts.Value `tfsdk:"timeouts"`
	Disks             types.List     `tfsdk:"disks"`
	Hardware          types.Object   `tfsdk:"hardware"`
	EstimatedSize     types.Int64    `tfsdk:"estimated_output_size"`
	PlannedStages     types.List     `tfsdk:"planned_stages"`
	PlannedFixes      types.List     `tfsdk:"planned_fixes"`
	PlanWarnings      types.List     `tfsdk:"plan_warnings"`
	SourceFingerprint types.String   `tfsdk:"source_fingerprint"`
	ReportPath        types.String   `tfsdk:"report_path"`
	FixesApplied      types.List     `tfsdk:"fixes_applied"`
	BootTestResult    types.Object   `tfsdk:"boot_test_result"`
	Guest             types.Object   `tfsdk:"guest"`
	Warm              types.Object   `tfsdk:"warm"`
}

type vmOutputModel struct {
	Dir         types.String `tfsdk:"dir"`
	Pool        types.String `tfsdk:"pool"`
	Volume      types.String `tfsdk:"volume"`
	Format      types.String `tfsdk:"format"`
	Compression types.Bool   `tfsdk:"compression"`
	Overwrite   types.Bool   `tfsdk:"overwrite"`
}

// vmKnownInputs reports whether every input the engine needs is known.
func vmKnownInputs(ctx context.Context, m *vmConversionModel, cfg tfsdk.Config) bool {
	if m.Source.IsNull() || m.Source.IsUnknown() || m.Output == nil || !sourceKnown(ctx, cfg) {
		return false
	}
	vals := []attr.Value{m.Output.Dir, m.Output.Pool, m.Output.Volume, m.Output.Format, m.Output.Compression, m.Output.Overwrite}
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

// vmRequest is the engine request a planned model asks for.
func vmRequest(ctx context.Context, m *vmConversionModel, cfg tfsdk.Config, data *providerData, diags *diag.Diagnostics) engine.Request {
	dir := m.Output.Dir.ValueString()
	if abs, err := filepath.Abs(dir); err == nil && dir != "" {
		dir = abs
	}
	req := engine.Request{
		Source: vmSourceSpec(ctx, m.Source, cfg, data, diags),
		Output: engine.OutputSpec{
			Dir:         dir,
			Format:      m.Output.Format.ValueString(),
			Compression: m.Output.Compression.ValueBool(),
			Overwrite:   m.Output.Overwrite.ValueBool(),
			Pool:        m.Output.Pool.ValueString(),
			Volume:      m.Output.Volume.ValueString(),
			VM:          m.Output.Pool.ValueString() != "",
		},
	}
	req.Fixes, req.Inspect, req.BootTest = guestWorkSpec(ctx, m.Fixes, m.Inspect, m.BootTest, diags)
	return req
}

// setVMPlanned fills the attributes the engine's plan determines; what
// only apply knows (each image's size and checksum) is unknown.
func setVMPlanned(m *vmConversionModel, p *engine.Plan) {
	m.ID = types.StringValue(outputID(p))
	m.Disks = vmDisksValue(p, nil)
	m.Hardware = hardwareValue(p.Hardware)
	m.SourceFingerprint = types.StringValue(p.Source.Fingerprint)
	m.ReportPath = types.StringValue(engine.VMReportPath(p.Output.Path))
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
	m.PlannedFixes = types.ListNull(types.ObjectType{AttrTypes: plannedFixAttrTypes})
	if g := p.Guest; g != nil && g.How != "skipped" {
		m.PlannedFixes = plannedFixesValue(g.Changes)
	}
}

// setVMDeferred marks what the content of disks not fetched yet decides
// (their chains and sizes, the stages' details, the fixes) as known after
// apply, for a VM planned from its remote ends' metadata.
func setVMDeferred(m *vmConversionModel, p *engine.Plan) {
	if !p.Source.Deferred {
		return
	}
	m.EstimatedSize = types.Int64Unknown()
	m.PlannedStages, m.PlanWarnings = types.ListUnknown(types.StringType), types.ListUnknown(types.StringType)
	m.PlannedFixes = types.ListUnknown(types.ObjectType{AttrTypes: plannedFixAttrTypes})
	elems := m.Disks.Elements()
	for i, d := range p.Disks {
		o, ok := elems[i].(types.Object)
		if !d.Source.Deferred || !ok {
			continue
		}
		attrs := o.Attributes()
		attrs["chain"], attrs["virtual_size"], attrs["estimated_size"] = types.ListUnknown(types.StringType), types.Int64Unknown(), types.Int64Unknown()
		elems[i] = types.ObjectValueMust(vmDiskAttrTypes, attrs)
	}
	m.Disks = types.ListValueMust(types.ObjectType{AttrTypes: vmDiskAttrTypes}, elems)
}

// setVMApplied fills what apply found and wrote.
func setVMApplied(m *vmConversionModel, p *engine.Plan, r *engine.Result) {
	m.Disks = vmDisksValue(p, r.Disks)
	if r.Output.ReportPath != "" {
		m.ReportPath = types.StringValue(r.Output.ReportPath)
	}
	m.FixesApplied = changesValue(r.Fixes)
	m.BootTestResult = bootResultValue(r.BootTest)
	m.Guest = guestValue(r.Guest)
}

// keepVMPlanned restores what the plan showed over what a later engine
// plan says: Terraform requires state to keep every value the plan knew.
func keepVMPlanned(m, planned *vmConversionModel) {
	if !planned.EstimatedSize.IsUnknown() {
		m.EstimatedSize = planned.EstimatedSize
	}
	if !planned.Hardware.IsUnknown() {
		m.Hardware = planned.Hardware
	}
	for _, l := range []struct{ dst, planned *types.List }{
		{&m.PlannedStages, &planned.PlannedStages}, {&m.PlannedFixes, &planned.PlannedFixes}, {&m.PlanWarnings, &planned.PlanWarnings},
	} {
		if !l.planned.IsUnknown() {
			*l.dst = *l.planned
		}
	}
	m.Disks = keepKnownElements(m.Disks, planned.Disks)
}

// keepKnownElements takes, element by element, the attributes of planned
// that are known over those of now, when both list the same number of
// objects.
func keepKnownElements(now, planned types.List) types.List {
	if planned.IsUnknown() || planned.IsNull() || len(planned.Elements()) != len(now.Elements()) {
		return now
	}
	elems := make([]attr.Value, len(now.Elements()))
	for i, e := range now.Elements() {
		n, okN := e.(types.Object)
		p, okP := planned.Elements()[i].(types.Object)
		if !okN || !okP || p.IsUnknown() {
			elems[i] = e
			continue
		}
		attrs := n.Attributes()
		for k, v := range p.Attributes() {
			if !v.IsUnknown() {
				attrs[k] = v
			}
		}
		elems[i] = types.ObjectValueMust(n.AttributeTypes(context.Background()), attrs)
	}
	return types.ListValueMust(now.ElementType(context.Background()), elems)
}

// vmDisksValue renders the plan's disks, with each image's size and
// checksum from written (in the same order), or unknown before apply.
func vmDisksValue(p *engine.Plan, written []engine.OutputResult) types.List {
	elem := types.ObjectType{AttrTypes: vmDiskAttrTypes}
	vals := make([]attr.Value, 0, len(p.Disks))
	for i, d := range p.Disks {
		chain := make([]string, len(d.Source.Chain))
		for j, l := range d.Source.Chain {
			chain[j] = l.Path
		}
		size, sum := types.Int64Unknown(), types.StringUnknown()
		if i < len(written) {
			size, sum = types.Int64Value(written[i].Size), types.StringValue(written[i].SHA256)
		}
		out, pool, vol := d.Output.Path, types.StringNull(), types.StringNull()
		if v := p.Output.Volume; v != nil && i < len(v.Disks) {
			// The volume's file on the host, as a dir pool names it.
			out, pool, vol = v.PoolPath+"/"+v.Disks[i], types.StringValue(v.Pool), types.StringValue(v.Disks[i])
		}
		vals = append(vals, types.ObjectValueMust(vmDiskAttrTypes, map[string]attr.Value{
			"device": types.StringValue(d.Device), "path": types.StringValue(out), "pool": pool, "volume": vol, "format": types.StringValue(p.Output.Format),
			"source_path": types.StringValue(d.Source.Path), "chain": strList(chain), "virtual_size": types.Int64Value(d.Source.VirtualSize),
			"estimated_size": types.Int64Value(d.Output.EstimatedSize), "size": size, "sha256": sum,
		}))
	}
	return types.ListValueMust(elem, vals)
}

// hardwareValue renders the VM's hardware; nil (a source that does not
// describe it) is null.
func hardwareValue(h *engine.Hardware) types.Object {
	if h == nil {
		return types.ObjectNull(vmHardwareTypes)
	}
	nics := make([]attr.Value, 0, len(h.NICs))
	for _, n := range h.NICs {
		nics = append(nics, types.ObjectValueMust(vmNICAttrTypes, map[string]attr.Value{
			"mac": types.StringValue(n.MAC), "model": types.StringValue(n.Model), "network": types.StringValue(n.Network),
		}))
	}
	return types.ObjectValueMust(vmHardwareTypes, map[string]attr.Value{
		"vcpus": types.Int64Value(int64(h.VCPUs)), "memory_mib": types.Int64Value(int64(h.MemoryMiB)),
		"firmware": types.StringValue(h.Firmware), "guest_os": types.StringValue(h.GuestOS), "skipped": strList(h.Skipped),
		"nics": types.ListValueMust(types.ObjectType{AttrTypes: vmNICAttrTypes}, nics),
	})
}

// vmStateFromReport rebuilds an imported VM conversion from its report.
func vmStateFromReport(ctx context.Context, m *vmConversionModel, rep *engine.Report, diags *diag.Diagnostics) {
	req := rep.Plan.Request
	m.Source = vmSourceFromSpec(ctx, req.Source, diags)
	m.Output = &vmOutputModel{
		Dir:         types.StringValue(req.Output.Dir),
		Pool:        types.StringNull(),
		Volume:      types.StringNull(),
		Format:      types.StringValue(req.Output.Format),
		Compression: types.BoolValue(req.Output.Compression),
		Overwrite:   types.BoolValue(req.Output.Overwrite),
	}
	if req.Output.VM {
		m.Output.Dir, m.Output.Pool = types.StringNull(), types.StringValue(req.Output.Pool)
		if req.Output.Volume != "" {
			m.Output.Volume = types.StringValue(req.Output.Volume)
		}
	}
	m.Fixes, m.Inspect, m.BootTest = guestWorkFromSpec(req)
	m.Timeouts = nullTimeouts()
	setVMPlanned(m, rep.Plan)
	setVMApplied(m, rep.Plan, rep.Result)
	m.Warm = types.ObjectNull(warmAttrTypes)
	if rep.Result.Warm != nil {
		m.Warm = warmValue(nil, rep.Result.Warm, diags)
	}
}
