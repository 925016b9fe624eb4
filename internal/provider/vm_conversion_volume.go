package provider

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/vmconv/terraform-provider-vmconv/engine"
)

// vmVolumesOf names a VM conversion's pool output: the pool, the prefix
// its set's report is named after, and its volumes from state (nil after
// import: the report lists them).
func vmVolumesOf(m *vmConversionModel) (pool, prefix string, names []string, ok bool) {
	rest, found := strings.CutPrefix(m.ID.ValueString(), volumeImportPrefix)
	if !found {
		return "", "", nil, false
	}
	pool, prefix, ok = strings.Cut(rest, "/")
	if !ok || pool == "" || prefix == "" {
		return "", "", nil, false
	}
	for _, e := range m.Disks.Elements() {
		if o, isObj := e.(types.Object); isObj {
			if v, isStr := o.Attributes()["volume"].(types.String); isStr && v.ValueString() != "" {
				names = append(names, v.ValueString())
			}
		}
	}
	return pool, prefix, names, true
}

// readVMVolumes is Read for a VM published into a pool: every volume as
// the host has it, through libvirt.
func (r *vmConversionResource) readVMVolumes(ctx context.Context, state *vmConversionModel, pool, prefix string, names []string, req resource.ReadRequest, resp *resource.ReadResponse) {
	if r.data == nil {
		resp.Diagnostics.AddError(summaryUnconfigured, unconfiguredDetail("reading a VM's volumes"))
		return
	}
	rep, vols, err := r.data.engine.ReadVolumeSet(ctx, pool, prefix, names)
	if err != nil {
		addFaultAt(&resp.Diagnostics, path.Root("output").AtName("pool"), "Reading the VM's volumes", err)
		return
	}
	var written []engine.OutputResult
	if state.Output == nil {
		if rep == nil || rep.Result == nil || rep.Result.Output.Volume == nil {
			resp.Diagnostics.AddError(summaryImport, fmt.Sprintf("Pool %s has no complete vmconv report %s%s for a VM, so vmconv did not publish one under that name, or its publication was interrupted.\n\n"+
				"Import a VM published into a pool as volume:<pool>/<output.volume>.", pool, prefix, engine.VolumeReportSuffix))
			return
		}
		vmStateFromReport(ctx, state, rep, &resp.Diagnostics)
		written = rep.Result.Disks
		resp.Diagnostics.Append(setStamps(ctx, resp.Private, written)...)
	} else {
		raw, d := req.Private.GetKey(ctx, privStamps)
		resp.Diagnostics.Append(d...)
		if err := json.Unmarshal(raw, &written); (err != nil || len(raw) == 0) && rep != nil && rep.Result != nil {
			written = rep.Result.Disks
		}
	}
	missing := 0
	var drifted []string
	for i, v := range vols {
		switch {
		case !v.Exists:
			missing++
			drifted = append(drifted, fmt.Sprintf("%s/%s: missing", pool, v.Info.Name))
			if i < len(names) {
				drifted[len(drifted)-1] = fmt.Sprintf("%s/%s: missing", pool, names[i])
			}
		case i < len(written) && written[i].Volume != nil && written[i].Volume.Stamp != v.Stamp:
			drifted = append(drifted, fmt.Sprintf("%s/%s: changed", pool, v.Info.Name))
		}
	}
	if len(vols) > 0 && missing == len(vols) {
		tflog.Warn(ctx, "the VM's volumes are gone; removing from state so the next plan converts the VM again", map[string]any{"pool": pool, "prefix": prefix})
		resp.State.RemoveResource(ctx)
		return
	}
	if len(drifted) > 0 {
		b, _ := json.Marshal(drifted)
		resp.Diagnostics.Append(resp.Private.SetKey(ctx, privDrift, b)...)
	} else {
		resp.Diagnostics.Append(resp.Private.SetKey(ctx, privDrift, nil)...)
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, state)...)
}

// sameVMVolumes says whether the set's report in the pool is of the
// conversion ep plans: the same source content into the same format.
func (r *vmConversionResource) sameVMVolumes(ctx context.Context, ep *engine.Plan) bool {
	vp := ep.Output.Volume
	if vp == nil {
		return false
	}
	rep, _, err := r.data.engine.ReadVolumeSet(ctx, vp.Pool, vp.Name, []string{})
	if err != nil || rep == nil || rep.Plan == nil {
		return false
	}
	return rep.Plan.Source.Fingerprint == ep.Source.Fingerprint && rep.Plan.Request.Output.Format == ep.Request.Output.Format
}
