package source

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/engine/fingerprint"
	"github.com/vmconv/terraform-provider-vmconv/engine/guest"
	"github.com/vmconv/terraform-provider-vmconv/engine/output"
	"github.com/vmconv/terraform-provider-vmconv/engine/ovf"
)

// ovaSource is one disk of an OVA: a local archive, or one downloaded
// first like a URL source. The archive's disks are extracted once per
// archive fingerprint into the cache and reused by later plans and
// applies; the archive itself is read as a stream, once.
type ovaSource struct {
	spec Spec
	env  Env
}

func (*ovaSource) Kind() string { return "ova" }

// extraction records what an extraction holds, beside its disks.
type extraction struct {
	// Version changes when what is recorded does (v2: disk slots), so an
	// older extraction is redone rather than read without them.
	Version     int      `json:"version"`
	Fingerprint string   `json:"fingerprint"`
	OVF         *ovf.OVF `json:"ovf"`
}

const extractionVersion = 2

func (s *ovaSource) Locate(ctx context.Context, fetchNow bool) (*Local, *Remote, error) {
	archive, fp := s.spec.OVA, ""
	if u := s.spec.OVAURL; u != nil {
		dest, dfp, r, err := download(ctx, s.env, u, fetchNow)
		if err != nil || r != nil {
			return nil, r, err
		}
		archive, fp = dest, dfp
	}
	l, err := s.extract(ctx, archive, fp)
	return l, nil, err
}

func (s *ovaSource) extract(ctx context.Context, archive, fp string) (*Local, error) {
	if _, err := os.Stat(archive); err != nil {
		return nil, fault.New(fault.SourceMissing, archive, "the OVA does not exist").WithHint("Check source.ova.path.")
	}
	afp, _, err := fingerprint.Files([]string{archive})
	if err != nil {
		return nil, fault.Wrap(fault.SourceUnreadable, archive, err, "cannot fingerprint the OVA")
	}
	dir := s.env.entry("ova", afp)
	if err := s.env.use(dir); err != nil {
		return nil, err
	}
	done := filepath.Join(dir, "extracted.json")
	var x extraction
	if b, err := os.ReadFile(done); err != nil || json.Unmarshal(b, &x) != nil || x.Version != extractionVersion {
		os.RemoveAll(dir)
		tmp := dir + ".tmp"
		os.RemoveAll(tmp)
		if err := os.MkdirAll(tmp, 0o755); err != nil {
			return nil, fault.Wrap(fault.OutputNotWritable, tmp, err, "cannot create the extraction folder")
		}
		o, err := ovf.ExtractOVA(ctx, archive, tmp)
		if err != nil {
			os.RemoveAll(tmp)
			return nil, err
		}
		x = extraction{Version: extractionVersion, Fingerprint: afp, OVF: o.OVF}
		b, _ := json.Marshal(x)
		if err := output.WriteAtomic(filepath.Join(tmp, "extracted.json"), b, 0o644); err != nil {
			os.RemoveAll(tmp)
			return nil, fault.Wrap(fault.OutputNotWritable, tmp, err, "cannot record the extraction")
		}
		if err := os.Rename(tmp, dir); err != nil {
			os.RemoveAll(tmp)
			return nil, fault.Wrap(fault.OutputNotWritable, dir, err, "cannot keep the extraction")
		}
	}
	if x.Fingerprint != afp {
		return nil, fault.New(fault.SourceChanged, archive, "the OVA changed while it was being read")
	}
	n := s.spec.OVADisk
	if n < 0 || n >= len(x.OVF.Disks) {
		return nil, fault.New(fault.InvalidRequest, archive, "the OVF has %d disk(s); disk %d does not exist", len(x.OVF.Disks), n).
			WithHint("Set source.ova.disk to a number from 0 to %d.", len(x.OVF.Disks)-1)
	}
	if fp == "" {
		fp = afp // a downloaded OVA keeps the download's fingerprint
	}
	l := &Local{
		Head: filepath.Join(dir, x.OVF.Disks[n].File), Fingerprint: fp, OVF: x.OVF,
		Note:     fmt.Sprintf("disk %d is %s of %s", n, x.OVF.Disks[n].File, x.OVF.Name),
		Hardware: ovfHardware(x.OVF),
	}
	// As a whole VM, every disk in the order the VM attached them.
	if s.env.WholeVM && x.OVF.SlotProblem != "" {
		return nil, fault.New(fault.CorruptDescriptor, ovf.MemberLabel(s.spec.OVA, "*.ovf"), "the OVF does not say with certainty where the VM attached its disks: %s", x.OVF.SlotProblem).
			WithHint("Fix the OVF's disk drive items (Parent and AddressOnParent) or export the VM again; one disk still converts alone with vmconv_disk_conversion.")
	}
	for _, d := range x.OVF.InSlotOrder() {
		slot := guest.DiskSlot{Bus: d.Bus, Controller: d.Controller, Unit: d.Unit}
		l.Disks = append(l.Disks, Disk{Head: filepath.Join(dir, d.File), Device: slot.String(), Slot: slot})
	}
	return l, nil
}

// ovfHardware is the VM's shape as its OVF describes it.
func ovfHardware(o *ovf.OVF) *Hardware {
	h := &Hardware{VCPUs: max(o.CPUs, 1), MemoryMiB: o.MemoryMiB, Firmware: o.Firmware, GuestOS: o.OSType}
	for _, n := range o.NICs {
		h.NICs = append(h.NICs, NIC{MAC: n.MAC, Model: n.Model, Network: n.Network})
	}
	return h
}

func (s *ovaSource) Describe(r *Remote) (string, string) {
	if u := s.spec.OVAURL; u != nil {
		return u.Shown, fmt.Sprintf("download the OVA%s from %s into the cache (%s), then extract %s, streamed once and kept by the archive's fingerprint",
			sizeNote(r), u.Shown, resumeNote(r), s.which())
	}
	return s.spec.OVA, fmt.Sprintf("extract %s from the OVA, streamed once and kept by the archive's fingerprint", s.which())
}

// which says which disks are extracted: all of a whole VM's (the
// engine extracts every disk of an archive once; a disk conversion uses
// one of them).
func (s *ovaSource) which() string {
	if s.env.WholeVM {
		return "every disk"
	}
	return fmt.Sprintf("disk %d", s.spec.OVADisk)
}

func (s *ovaSource) Protected() []string {
	if s.spec.OVA != "" {
		return []string{s.spec.OVA}
	}
	return nil
}

func (s *ovaSource) Relabel(err error) error {
	// Extractions live in cache/ova/<key>/; the folder being filled is
	// <key>.tmp/, and faults about writing it rightly name the cache.
	dir := regexp.QuoteMeta(filepath.Join(s.env.CacheDir, "ova")) + `/[0-9a-f]{24}/`
	member := func(archive string) *labelRule {
		return &labelRule{regexp.MustCompile(dir), func(string) string { return ovf.MemberLabel(archive, "") }}
	}
	if u := s.spec.OVAURL; u != nil {
		return labels{member(shownURL(u)), downloadRule(s.env, u)}.relabel(err)
	}
	return labels{member(s.spec.OVA)}.relabel(err)
}
