package provider

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/vmconv/terraform-provider-vmconv/engine"
)

// privVolumeStamp keeps a pool output's stamp, for drift detection.
const privVolumeStamp = "volume_stamp"

// volumeOf names a conversion's pool output: from its output settings, or
// after terraform import from its ID ("volume:<pool>/<volume>").
func volumeOf(m *diskConversionModel) (pool, vol string, ok bool) {
	if m.Output != nil && m.Output.Pool.ValueString() != "" {
		return m.Output.Pool.ValueString(), m.Output.Volume.ValueString(), true
	}
	if m.Output == nil {
		if rest, found := strings.CutPrefix(m.ID.ValueString(), volumeImportPrefix); found {
			pool, vol, ok = strings.Cut(rest, "/")
			return pool, vol, ok && pool != "" && vol != ""
		}
	}
	return "", "", false
}

// readVolume is Read for a pool output: the volume as its host has it,
// through libvirt.
func (r *diskConversionResource) readVolume(ctx context.Context, state *diskConversionModel, pool, vol string, req resource.ReadRequest, resp *resource.ReadResponse) {
	if r.data == nil {
		resp.Diagnostics.AddError(summaryUnconfigured, unconfiguredDetail("reading a volume"))
		return
	}
	st, err := r.data.engine.ReadVolume(ctx, pool, vol)
	if err != nil {
		addFaultAt(&resp.Diagnostics, path.Root("output").AtName("volume"), "Reading the converted volume", err)
		return
	}
	imported := state.Output == nil
	if !st.Exists {
		if imported {
			resp.Diagnostics.AddError(summaryImport, fmt.Sprintf("There is no volume %s in pool %s on %s.\n\nImport a pool output as volume:<pool>/<volume>.", vol, pool, r.data.engine.LibvirtURI()))
			return
		}
		tflog.Warn(ctx, "volume is missing; removing from state so the next plan recreates it", map[string]any{"pool": pool, "volume": vol})
		resp.State.RemoveResource(ctx)
		return
	}
	want := ""
	if imported {
		if st.Report == nil || st.Report.Result == nil || st.Report.Result.Output.Volume == nil {
			resp.Diagnostics.AddError(summaryImport, fmt.Sprintf("Volume %s in pool %s has no complete vmconv report (%s%s), so vmconv did not publish it, or its publication was interrupted.",
				vol, pool, vol, engine.VolumeReportSuffix))
			return
		}
		stateFromReport(ctx, state, st.Report, &resp.Diagnostics)
		want = st.Report.Result.Output.Volume.Stamp
		resp.Diagnostics.Append(resp.Private.SetKey(ctx, privVolumeStamp, []byte(strconv.Quote(want)))...)
	} else {
		raw, d := req.Private.GetKey(ctx, privVolumeStamp)
		resp.Diagnostics.Append(d...)
		if s, err := strconv.Unquote(string(raw)); err == nil {
			want = s
		} else if st.Report != nil && st.Report.Result != nil && st.Report.Result.Output.Volume != nil {
			want = st.Report.Result.Output.Volume.Stamp
		}
	}
	if want != "" && st.Stamp != want {
		resp.Diagnostics.Append(resp.Private.SetKey(ctx, privDrift, []byte(`"changed"`))...)
	} else {
		resp.Diagnostics.Append(resp.Private.SetKey(ctx, privDrift, nil)...)
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, state)...)
}
