package engine

import (
	"context"

	"github.com/vmconv/terraform-provider-vmconv/engine/chain"
	"github.com/vmconv/terraform-provider-vmconv/engine/diskformat"
	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/engine/fingerprint"
	"github.com/vmconv/terraform-provider-vmconv/engine/guest"
)

// DiskInfo describes a disk without converting it.
type DiskInfo struct {
	Source SourcePlan  `json:"source"`
	Guest  *guest.Info `json:"guest,omitempty"`
	// Inspection is "inspected", "cached" or "skipped".
	Inspection string   `json:"inspection"`
	Warnings   []string `json:"warnings,omitempty"`
}

// DescribeDisk resolves a disk's chain and fingerprint and, with inspect,
// finds its guest (cached by fingerprint, like plan-time inspection). It
// writes nothing but scratch and cache files.
func (e *Engine) DescribeDisk(ctx context.Context, src SourceSpec, inspect bool) (*DiskInfo, error) {
	if src.Path == "" {
		return nil, fault.New(fault.InvalidRequest, "", "no path is set").WithHint("Set path to the disk's newest file.")
	}
	c, err := chain.Resolve(src.Path, chain.Options{Format: diskformat.Format(src.Format), AllowParentCIDMismatch: src.AllowParentCIDMismatch})
	if err != nil {
		return nil, err
	}
	fp, _, err := fingerprint.Files(filePaths(c))
	if err != nil {
		return nil, fault.Wrap(fault.SourceUnreadable, c.Head().Path, err, "cannot fingerprint the disk")
	}
	d := &DiskInfo{
		Source: SourcePlan{Kind: "path", Path: c.Head().Path, Format: string(c.Head().Format), Subformat: c.Head().Subformat,
			VirtualSize: c.VirtualSize(), Fingerprint: fp, Chain: c.Layers},
		Inspection: "skipped",
		Warnings:   c.Warnings,
	}
	if !inspect {
		return d, nil
	}
	g, err := e.planGuest(ctx, c, fp, Request{Source: src})
	if err != nil {
		return nil, err
	}
	d.Guest, d.Inspection = g.Guest, g.How
	d.Warnings = append(d.Warnings, g.Warnings...)
	return d, nil
}
