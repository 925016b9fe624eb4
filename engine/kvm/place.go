package kvm

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/engine/guest"
	"github.com/vmconv/terraform-provider-vmconv/engine/output"
)

// VolumePrefix marks a disk or an overlay that is a volume of a storage
// pool on the libvirt host: "volume:<pool>/<name>".
const VolumePrefix = "volume:"

// VolumeRef names a pool volume.
func VolumeRef(pool, name string) string { return VolumePrefix + pool + "/" + name }

// ParseVolumeRef splits a VolumeRef.
func ParseVolumeRef(s string) (pool, name string, ok bool) {
	rest, found := strings.CutPrefix(s, VolumePrefix)
	if !found {
		return "", "", false
	}
	pool, name, ok = strings.Cut(rest, "/")
	return pool, name, ok && pool != "" && name != ""
}

// Ref is how the lifecycle names a disk: its path, or its VolumeRef.
func (d DiskRequest) Ref() string {
	if d.Pool != "" {
		return VolumeRef(d.Pool, d.Volume)
	}
	return d.Source
}

// remote says whether the domain's disks are pool volumes.
func (r Request) remote() bool { return len(r.Disks) > 0 && r.Disks[0].Pool != "" }

// placement is where a domain's own disks live and how the lifecycle
// reaches them: files in vmconv's domain folder on this machine, or
// volumes in the disks' pools on the libvirt host, reached through libvirt
// only.
type placement interface {
	// check refuses disks that are missing or not images.
	check(ctx context.Context, req Request) error
	// prepare makes the overlays (st.Overlays) and records that the
	// domain uses each disk.
	prepare(ctx context.Context, req Request, st *Domain) error
	// undo removes what prepare made.
	undo(req Request, st *Domain)
	// hostPaths are the overlays' files as QEMU opens them.
	hostPaths(st *Domain) ([]string, error)
	// nvram is the UEFI variable store's file ("" lets libvirt choose).
	nvram(name string) string
	// instrument plants the boot marker on the first overlay.
	instrument(ctx context.Context, st *Domain, info *guest.Info, nonce string, poweroff bool) error
	// console returns the file the serial console's output appears in
	// once the domain runs, and a stop for any copying it started.
	console(ctx context.Context, req Request, st *Domain, work string) (path string, stop func())
	// published records, once the domain exists, that it holds its disks.
	published(req Request, st *Domain)
}

func (m *Manager) place(req Request) placement {
	if req.remote() {
		return &poolDisks{m: m}
	}
	return &localDisks{m: m}
}

// localDisks: overlays in the domain's folder, holds beside the images,
// the console logged to a file by libvirt.
type localDisks struct{ m *Manager }

func (l *localDisks) check(ctx context.Context, req Request) error { return checkDisks(req, false) }

func (l *localDisks) prepare(ctx context.Context, req Request, st *Domain) error {
	dir := l.m.domainDir(req.Name)
	st.ConsoleLog = filepath.Join(dir, "console.log")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fault.Wrap(fault.OutputNotWritable, dir, err, "cannot create the domain's folder")
	}
	os.Chmod(dir, 0o755) // libvirt runs QEMU as another user
	for i, d := range req.Disks {
		f, _, _ := detectFormat(d.Source)
		ov := filepath.Join(dir, fmt.Sprintf("disk%d.qcow2", i))
		if err := l.m.deps.CreateOverlay(ctx, ov, d.Source, f.QemuDriver()); err != nil {
			return err
		}
		os.Chmod(ov, 0o644)
		st.Overlays = append(st.Overlays, ov)
		if err := output.AddHold(d.Source, output.Hold{Domain: req.Name, URI: l.m.URI(), Overlay: ov}); err != nil {
			return fault.Wrap(fault.OutputNotWritable, d.Source, err, "cannot record that the domain uses the disk")
		}
	}
	return nil
}

func (l *localDisks) undo(req Request, st *Domain) {
	for i, o := range st.Overlays {
		output.RemoveHold(req.Disks[i].Source, o)
	}
	os.RemoveAll(l.m.domainDir(req.Name))
}

func (l *localDisks) hostPaths(st *Domain) ([]string, error) { return st.Overlays, nil }

func (l *localDisks) nvram(name string) string {
	return filepath.Join(l.m.domainDir(name), "OVMF_VARS.fd")
}

func (l *localDisks) instrument(ctx context.Context, st *Domain, info *guest.Info, nonce string, poweroff bool) error {
	return l.m.instrumentOnce(ctx, st.Overlays[0], info, nonce, poweroff)
}

func (l *localDisks) console(ctx context.Context, req Request, st *Domain, work string) (string, func()) {
	return st.ConsoleLog, func() {}
}

func (l *localDisks) published(req Request, st *Domain) {
	for i, o := range st.Overlays {
		output.AddHold(req.Disks[i].Source, output.Hold{Domain: req.Name, UUID: st.UUID, URI: l.m.URI(), Overlay: o})
	}
}
