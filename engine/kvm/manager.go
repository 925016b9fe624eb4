package kvm

import (
	"context"
	"errors"
	"path/filepath"
	"sync"

	"github.com/vmconv/terraform-provider-vmconv/engine/accel"
	"github.com/vmconv/terraform-provider-vmconv/engine/boottest"
	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/engine/guest"
)

// DefaultLibvirtURI is used when neither configuration nor environment
// names one.
const DefaultLibvirtURI = "qemu:///system"

// DefaultDomainDir holds domain-owned disks.
const DefaultDomainDir = "/var/lib/vmconv/domains"

// Config says where domains live.
type Config struct {
	// URI is libvirt's; empty means DefaultLibvirtURI.
	URI string
	// Dir holds each domain's folder (overlays, NVRAM, console log);
	// empty means DefaultDomainDir.
	Dir string
	// FirmwareDir overrides where OVMF is looked for.
	FirmwareDir string
}

// Conversion is what a disk's vmconv conversion report says about it.
type Conversion struct {
	Guest *guest.Info
	Fixes boottest.Fixes
}

// Deps is what the lifecycle needs from the engine that embeds it.
type Deps struct {
	// Accel is the accelerator domains run with (kvm or tcg).
	Accel func(ctx context.Context) (accel.Result, error)
	// CreateOverlay makes a qcow2 overlay on backing (of format); its
	// errors are ready for a diagnostic.
	CreateOverlay func(ctx context.Context, overlay, backing, format string) error
	// Rebase points a qcow2 overlay at another backing file (of format)
	// without reading either (qemu-img rebase -u).
	Rebase func(ctx context.Context, overlay, backing, format string) error
	// OpenAppliance opens image in the inspection appliance, with work as
	// its scratch folder.
	OpenAppliance func(ctx context.Context, image, format, work string) (guest.Session, error)
	// Scratch makes a private scratch folder whose name starts with prefix.
	Scratch func(prefix string) (string, error)
	// Dial connects to libvirt at uri (engine/internal/libvirt, which
	// keeps cgo out of this package).
	Dial func(uri string) (Hypervisor, error)
	// Conversion reads the conversion report beside a disk; ok is false
	// when vmconv did not convert it.
	Conversion func(disk string) (c Conversion, ok bool)
}

// Manager defines, starts, changes and removes domains on one libvirt.
type Manager struct {
	cfg  Config
	deps Deps

	hvMu sync.Mutex
	hv   Hypervisor
	// kvmFailure says why the host's KVM was given up for TCG.
	kvmFailure string
}

// New returns a manager; it connects to libvirt on first use, so users who
// only convert disks need no libvirtd.
func New(cfg Config, deps Deps) *Manager {
	return &Manager{cfg: cfg, deps: deps}
}

func (m *Manager) hypervisor() (Hypervisor, error) {
	m.hvMu.Lock()
	defer m.hvMu.Unlock()
	if m.hv != nil {
		return m.hv, nil
	}
	uri := m.URI()
	c, err := m.deps.Dial(uri)
	var f *fault.Error
	if errors.As(err, &f) {
		return nil, f // already says which host and what to check
	}
	if err != nil {
		return nil, fault.Wrap(fault.HypervisorUnreachable, uri, err, "cannot connect to libvirt at %s", uri).
			WithHint("Check that libvirtd is running (tools/setup starts it) and that the provider's uri (or LIBVIRT_DEFAULT_URI) names it.")
	}
	m.hv = c
	return c, nil
}

// URI is the URI domains are managed through.
func (m *Manager) URI() string {
	if m.cfg.URI == "" {
		return DefaultLibvirtURI
	}
	return m.cfg.URI
}

func (m *Manager) domainDir(name string) string {
	base := m.cfg.Dir
	if base == "" {
		base = DefaultDomainDir
	}
	return filepath.Join(base, name)
}

// conversion reads a disk's conversion report through Deps.
func (m *Manager) conversion(disk string) (Conversion, bool) {
	if m.deps.Conversion == nil {
		return Conversion{}, false
	}
	return m.deps.Conversion(disk)
}
