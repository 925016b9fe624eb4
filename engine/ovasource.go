package engine

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/engine/fingerprint"
	"github.com/vmconv/terraform-provider-vmconv/engine/output"
	"github.com/vmconv/terraform-provider-vmconv/engine/ovf"
)

// localOVA is an OVA source made local: the archive's fingerprint, its
// OVF, and the chosen disk extracted into the cache.
type localOVA struct {
	Fingerprint string   `json:"fingerprint"`
	OVF         *ovf.OVF `json:"ovf"`
	Disk        string   `json:"disk"`
	Reused      bool     `json:"-"`
}

// localizeOVA extracts an OVA's disks once per archive fingerprint into
// the cache folder and returns the chosen disk. The archive is read as a
// stream, once; the extraction is reused by later plans and applies.
func (e *Engine) localizeOVA(ctx context.Context, src SourceSpec) (*localOVA, error) {
	if _, err := os.Stat(src.OVA); err != nil {
		return nil, fault.New(fault.SourceMissing, src.OVA, "the OVA does not exist").WithHint("Check source.ova.path.")
	}
	fp, _, err := fingerprint.Files([]string{src.OVA})
	if err != nil {
		return nil, fault.Wrap(fault.SourceUnreadable, src.OVA, err, "cannot fingerprint the OVA")
	}
	dir := e.cacheEntry("ova", fp)
	done := filepath.Join(dir, "extracted.json")
	var l localOVA
	if b, err := os.ReadFile(done); err == nil && json.Unmarshal(b, &l) == nil {
		l.Reused = true
	} else {
		os.RemoveAll(dir)
		tmp := dir + ".tmp"
		os.RemoveAll(tmp)
		if err := os.MkdirAll(tmp, 0o755); err != nil {
			return nil, fault.Wrap(fault.OutputNotWritable, tmp, err, "cannot create the extraction folder")
		}
		o, err := ovf.ExtractOVA(ctx, src.OVA, tmp)
		if err != nil {
			os.RemoveAll(tmp)
			return nil, err
		}
		l = localOVA{Fingerprint: fp, OVF: o.OVF}
		b, _ := json.Marshal(l)
		if err := output.WriteAtomic(filepath.Join(tmp, "extracted.json"), b, 0o644); err != nil {
			os.RemoveAll(tmp)
			return nil, fault.Wrap(fault.OutputNotWritable, tmp, err, "cannot record the extraction")
		}
		if err := os.Rename(tmp, dir); err != nil {
			os.RemoveAll(tmp)
			return nil, fault.Wrap(fault.OutputNotWritable, dir, err, "cannot keep the extraction")
		}
	}
	if l.Fingerprint != fp {
		return nil, fault.New(fault.SourceChanged, src.OVA, "the OVA changed while it was being read")
	}
	if src.OVADisk < 0 || src.OVADisk >= len(l.OVF.Disks) {
		return nil, fault.New(fault.InvalidRequest, src.OVA, "the OVF has %d disk(s); disk %d does not exist", len(l.OVF.Disks), src.OVADisk).
			WithHint("Set source.ova.disk to a number from 0 to %d.", len(l.OVF.Disks)-1)
	}
	l.Disk = filepath.Join(dir, l.OVF.Disks[src.OVADisk].File)
	return &l, nil
}
