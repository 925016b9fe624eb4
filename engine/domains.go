package engine

import (
	"context"
	"path/filepath"
	"time"

	"github.com/vmconv/terraform-provider-vmconv/engine/boottest"
	"github.com/vmconv/terraform-provider-vmconv/engine/guest"
	"github.com/vmconv/terraform-provider-vmconv/engine/hostconn"
	"github.com/vmconv/terraform-provider-vmconv/engine/internal/guestfs"
	"github.com/vmconv/terraform-provider-vmconv/engine/internal/libvirt"
	"github.com/vmconv/terraform-provider-vmconv/engine/kvm"
)

// The domain lifecycle lives in engine/kvm; these names keep the facade's
// callers off that package.
type (
	DomainRequest = kvm.Request
	DomainDisk    = kvm.DiskRequest
	DomainState   = kvm.Domain
	DomainNIC     = kvm.NIC
	LiveDomain    = kvm.Live
)

// ParseVolumeRef splits "volume:<pool>/<name>", how domains name disks
// and overlays that are pool volumes.
func ParseVolumeRef(s string) (pool, name string, ok bool) { return kvm.ParseVolumeRef(s) }

// DefaultLibvirtURI is used when neither configuration nor environment
// names one.
const DefaultLibvirtURI = kvm.DefaultLibvirtURI

// DefaultDomainDir holds domain-owned disks.
const DefaultDomainDir = kvm.DefaultDomainDir

// newDomains gives the domain lifecycle what it needs from the engine: the
// accelerator, overlays, the appliance, scratch space and conversion
// reports.
func (e *Engine) newDomains() *kvm.Manager {
	return kvm.New(kvm.Config{URI: e.cfg.LibvirtURI, Dir: e.cfg.DomainDir, FirmwareDir: e.cfg.FirmwareDir}, kvm.Deps{
		Accel: e.Accel,
		CreateOverlay: func(ctx context.Context, overlay, backing, format string) error {
			if err := e.qemu.CreateOverlay(ctx, overlay, backing, format); err != nil {
				return toolFault(ctx, err, backing, "cannot create the domain's overlay on the disk")
			}
			return nil
		},
		Rebase: func(ctx context.Context, overlay, backing, format string) error {
			if err := e.qemu.RebaseUnsafe(ctx, overlay, backing, format); err != nil {
				return toolFault(ctx, err, overlay, "cannot point the domain's disk at its base")
			}
			return nil
		},
		OpenAppliance: func(ctx context.Context, image, format, work string) (guest.Session, error) {
			s, _, err := e.openAppliance(ctx, work, guestfs.Drive{Path: image, Format: format})
			return s, err
		},
		Scratch: e.scratch,
		Dial: func(uri string) (kvm.Hypervisor, error) {
			s := hostconn.Settings{URI: uri, KeyFile: e.cfg.SSHKeyFile, KnownHosts: e.cfg.SSHKnownHosts}
			d, err := s.Dialable(filepath.Join(e.cfg.WorkDir, "ssh"))
			if err != nil {
				return nil, err
			}
			c, err := libvirt.Open(d)
			if err != nil {
				return nil, hostconn.Unreachable(s, err)
			}
			return c, nil
		},
		Conversion: func(disk string) (kvm.Conversion, bool) {
			if pool, name, ok := kvm.ParseVolumeRef(disk); ok {
				return e.volumeConversion(pool, name)
			}
			rep, err := ReadReport(disk)
			if err != nil || rep.Plan == nil {
				return kvm.Conversion{}, false
			}
			return kvm.Conversion{Guest: rep.Result.Guest, Fixes: fixesOf(rep.Plan.Request.Fixes)}, true
		},
	})
}

// fixesOf is what boot failure hints need to know of a conversion's fixes.
func fixesOf(f FixSpec) boottest.Fixes {
	return boottest.Fixes{Enabled: f.Enabled, DryRun: f.DryRun, Disabled: f.Disabled}
}

// LibvirtURI is the URI domains are managed through.
func (e *Engine) LibvirtURI() string { return e.domains.URI() }

// DomainFirmware resolves a domain's firmware: the request's, else what
// inspection found in the first disk's conversion, else BIOS.
func (e *Engine) DomainFirmware(req DomainRequest) string { return e.domains.Firmware(req) }

// CheckDomain checks what can be checked before anything is defined.
func (e *Engine) CheckDomain(ctx context.Context, req DomainRequest, managed bool) error {
	return e.domains.Check(ctx, req, managed)
}

// CreateDomain defines the domain on overlays of its disks, starts it and,
// with a boot test, waits for the guest's success signal; on failure it
// removes everything it made.
func (e *Engine) CreateDomain(ctx context.Context, req DomainRequest, sink Sink) (*DomainState, error) {
	if sink == nil {
		sink = nopSink{}
	}
	return e.domains.Create(ctx, req, func(msg string, f map[string]any) {
		sink.Event(Event{Time: time.Now(), Kind: EventInfo, Stage: "domain", Message: msg, Fields: f})
	})
}

// ReadDomain reads a domain by name or UUID as libvirt has it now.
func (e *Engine) ReadDomain(nameOrUUID string) (LiveDomain, bool, error) {
	return e.domains.Read(nameOrUUID)
}

// UpdateDomain applies in-place changes: memory, vCPUs, running.
func (e *Engine) UpdateDomain(ctx context.Context, req DomainRequest, st *DomainState) error {
	return e.domains.Update(ctx, req, st)
}

// DeleteDomain stops and undefines the domain and removes its overlays and
// holds.
func (e *Engine) DeleteDomain(ctx context.Context, name string, disks, overlays []string, shutdown time.Duration) error {
	return e.domains.Delete(ctx, name, disks, overlays, shutdown)
}
