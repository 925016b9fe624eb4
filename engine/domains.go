package engine

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/vmconv/terraform-provider-vmconv/engine/accel"
	"github.com/vmconv/terraform-provider-vmconv/engine/diskformat"
	"github.com/vmconv/terraform-provider-vmconv/engine/domain"
	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/engine/guest"
	"github.com/vmconv/terraform-provider-vmconv/engine/inspect"
	"github.com/vmconv/terraform-provider-vmconv/engine/internal/libvirt"
	"github.com/vmconv/terraform-provider-vmconv/engine/output"
	"github.com/vmconv/terraform-provider-vmconv/engine/validate"
)

// DefaultLibvirtURI is used when neither configuration nor environment
// names one.
const DefaultLibvirtURI = "qemu:///system"

// DefaultDomainDir holds domain-owned disks.
const DefaultDomainDir = "/var/lib/vmconv/domains"

// DomainRequest is a KVM domain for migrated disks.
type DomainRequest struct {
	Name      string `json:"name"`
	MemoryMiB int    `json:"memory_mib"`
	VCPUs     int    `json:"vcpus"`
	// Firmware is bios or uefi; empty takes it from the first disk's
	// conversion report, else bios.
	Firmware string       `json:"firmware,omitempty"`
	Disks    []DomainDisk `json:"disks"`
	NICs     []domain.NIC `json:"network_interfaces"`
	Running  bool         `json:"running"`
	BootTest BootTestSpec `json:"boot_test"`
	// InitialBootBus boots the disks on this bus first (sata), until the
	// guest has booted, before switching them to their own bus: for guests
	// that need one boot to activate drivers.
	InitialBootBus string `json:"initial_boot_bus,omitempty"`
	// ShutdownTimeout bounds a graceful shutdown before the domain is
	// forced off.
	ShutdownTimeout time.Duration `json:"shutdown_timeout"`
}

// DomainDisk is a converted image and the bus it is attached on.
type DomainDisk struct {
	Source string `json:"source"`
	Bus    string `json:"bus"`
}

// DomainState is what exists after Create.
type DomainState struct {
	UUID       string             `json:"uuid"`
	XML        string             `json:"xml"`
	MACs       []string           `json:"macs"`
	Overlays   []string           `json:"overlays"`
	ConsoleLog string             `json:"console_log"`
	Firmware   string             `json:"firmware"`
	Type       string             `json:"type"`
	BootTest   *validate.Result   `json:"boot_test,omitempty"`
	Phases     []*validate.Result `json:"phases,omitempty"`
}

// hypervisor connects to libvirt on first use: users who only convert
// disks need no libvirtd.
func (e *Engine) hypervisor() (domain.Hypervisor, error) {
	e.hvMu.Lock()
	defer e.hvMu.Unlock()
	if e.hv != nil {
		return e.hv, nil
	}
	uri := e.cfg.LibvirtURI
	if uri == "" {
		uri = DefaultLibvirtURI
	}
	c, err := libvirt.Open(uri)
	if err != nil {
		return nil, fault.Wrap(fault.HypervisorUnreachable, uri, err, "cannot connect to libvirt at %s", uri).
			WithHint("Check that libvirtd is running (tools/setup starts it) and that the provider's uri (or LIBVIRT_DEFAULT_URI) names it.")
	}
	e.hv = c
	return c, nil
}

// LibvirtURI is the URI domains are managed through.
func (e *Engine) LibvirtURI() string {
	if e.cfg.LibvirtURI == "" {
		return DefaultLibvirtURI
	}
	return e.cfg.LibvirtURI
}

func (e *Engine) domainDir(name string) string {
	base := e.cfg.DomainDir
	if base == "" {
		base = DefaultDomainDir
	}
	return filepath.Join(base, name)
}

// DomainFirmware resolves a domain's firmware: the request's, else what
// inspection found in the first disk's conversion, else BIOS.
func (e *Engine) DomainFirmware(req DomainRequest) string {
	if req.Firmware != "" {
		return req.Firmware
	}
	if len(req.Disks) > 0 {
		if rep, err := ReadReport(req.Disks[0].Source); err == nil && rep.Result.Guest != nil && rep.Result.Guest.Firmware != "" {
			return rep.Result.Guest.Firmware
		}
	}
	return "bios"
}

// CheckDomain checks what can be checked before anything is defined: the
// name is free (unless the caller manages it), the firmware exists.
func (e *Engine) CheckDomain(ctx context.Context, req DomainRequest, managed bool) error {
	// A disk that does not exist yet may be a conversion in the same plan.
	if err := checkDomainDisks(req, true); err != nil {
		return err
	}
	if e.DomainFirmware(req) == "uefi" {
		if _, _, err := (validate.Firmware{Dir: e.cfg.FirmwareDir}).Paths(); err != nil {
			return err
		}
	}
	// The guest is known at plan time when the disk's conversion already
	// ran; otherwise CreateDomain checks again.
	var info *guest.Info
	if len(req.Disks) > 0 {
		if rep, err := ReadReport(req.Disks[0].Source); err == nil {
			info = rep.Result.Guest
		}
	}
	if err := checkBootPhases(req, info); err != nil {
		return err
	}
	if err := checkBootNetwork(req); err != nil {
		return err
	}
	hv, err := e.hypervisor()
	if err != nil {
		return err
	}
	if !managed {
		if info, ok, err := hv.Lookup(req.Name); err != nil {
			return fault.Wrap(fault.HypervisorFailed, req.Name, err, "cannot look the domain up")
		} else if ok {
			return fault.New(fault.DomainExists, req.Name, "a domain named %q already exists (UUID %s) and this resource does not manage it", req.Name, info.UUID).
				WithHint("Choose another name, or bring the existing domain under Terraform with terraform import.")
		}
	}
	return e.checkDomainAccess(ctx, req, hv)
}

// checkBootNetwork refuses a boot test that requires the network of a
// domain with no network interface: it could only fail, after the whole
// boot, and for no fault of the guest.
func checkBootNetwork(req DomainRequest) error {
	if !req.BootTest.Enabled || !req.Running || !req.BootTest.RequireNetwork || req.BootTest.SuccessPattern != "" || len(req.NICs) > 0 {
		return nil
	}
	return fault.New(fault.BootTestImpossible, req.Name, "boot_test.require_network is true, but the domain has no network interface, so no address can come up").
		WithHint("Add a network interface (network_interfaces = [{ network = \"default\" }], or { user = true }), or set boot_test.require_network = false to test the boot without network.")
}

// checkBootPhases refuses an initial_boot_bus that would be ignored: the
// switch to the disks' own bus happens when the first boot's test passes, so
// there must be a boot test to watch. Booting straight on the final bus
// instead would be the very boot the user asked to avoid.
func checkBootPhases(req DomainRequest, info *guest.Info) error {
	if req.InitialBootBus == "" {
		return nil
	}
	var why, hint string
	switch {
	case !req.Running:
		why, hint = "running is false", "Set running = true, or remove initial_boot_bus."
	case !req.BootTest.Enabled:
		why, hint = "the boot test is disabled", "Enable boot_test, or remove initial_boot_bus."
	case len(req.Disks) == 0:
		why, hint = "the domain has no disks", "Remove initial_boot_bus."
	case info != nil && info.HasOS() && info.OS != "linux" && req.BootTest.SuccessPattern == "":
		why = fmt.Sprintf("the guest is %s: vmconv plants its boot marker in Linux guests only, and no boot_test.success_pattern says what this guest writes to its serial console when it is up", info.OS)
		hint = "Set boot_test.success_pattern to a line the guest writes to its first serial port once booted (Windows with Emergency Management Services, bcdedit /ems on, writes \"SAC>\"), " +
			"or remove initial_boot_bus: the windows-virtio fix registers viostor and vioscsi as boot-start drivers, so the first boot can be on virtio."
	default:
		return nil
	}
	return fault.New(fault.BootPhases, req.Name, "initial_boot_bus = %q switches buses when the first boot's test passes, but %s", req.InitialBootBus, why).WithHint("%s", hint)
}

// LookupDomain finds a domain by name or UUID.
func (e *Engine) LookupDomain(nameOrUUID string) (domain.Info, bool, error) {
	hv, err := e.hypervisor()
	if err != nil {
		return domain.Info{}, false, err
	}
	return hv.Lookup(nameOrUUID)
}

func randomMAC() string {
	b := make([]byte, 3)
	rand.Read(b)
	return fmt.Sprintf("52:54:00:%02x:%02x:%02x", b[0], b[1], b[2])
}

// spec builds the definition for req, with every disk on bus (or its own).
func (e *Engine) spec(ctx context.Context, req DomainRequest, st *DomainState, bus string) (domain.Spec, error) {
	a, err := e.Accel(ctx)
	if err != nil {
		return domain.Spec{}, err
	}
	s := domain.Spec{Name: req.Name, UUID: st.UUID, MemoryMiB: uint(req.MemoryMiB), VCPUs: uint(req.VCPUs),
		Type: "qemu", Firmware: st.Firmware, ConsoleLog: st.ConsoleLog}
	if a.Mode == accel.KVM {
		s.Type = "kvm"
	}
	if s.Firmware == "uefi" {
		code, vars, err := (validate.Firmware{Dir: e.cfg.FirmwareDir}).Paths()
		if err != nil {
			return s, err
		}
		s.Loader, s.NVRAMTemplate = code, vars
		s.NVRAM = filepath.Join(e.domainDir(req.Name), "OVMF_VARS.fd")
	}
	for i, d := range req.Disks {
		b := d.Bus
		if bus != "" {
			b = bus
		}
		s.Disks = append(s.Disks, domain.Disk{Path: st.Overlays[i], Format: "qcow2", Bus: b})
	}
	for i, n := range req.NICs {
		n.MAC = st.MACs[i]
		s.NICs = append(s.NICs, n)
	}
	st.Type = s.Type
	return s, nil
}

// CreateDomain defines the domain on overlays of its disks, starts it and,
// with a boot test, waits for the guest's success signal. On any failure
// everything it made is removed again.
func (e *Engine) CreateDomain(ctx context.Context, req DomainRequest, sink Sink) (_ *DomainState, err error) {
	if sink == nil {
		sink = nopSink{}
	}
	emit := func(msg string, f map[string]any) {
		sink.Event(Event{Time: time.Now(), Kind: EventInfo, Stage: "domain", Message: msg, Fields: f})
	}
	if err := e.CheckDomain(ctx, req, false); err != nil {
		return nil, err
	}
	if err := checkDomainDisks(req, false); err != nil {
		return nil, err
	}
	hv, _ := e.hypervisor()
	dir := e.domainDir(req.Name)
	st := &DomainState{Firmware: e.DomainFirmware(req), ConsoleLog: filepath.Join(dir, "console.log")}
	var defined bool
	defer func() {
		if err == nil {
			return
		}
		// Leave nothing half-made: no definition, no overlays, no holds.
		if defined {
			hv.Destroy(req.Name)
			hv.Undefine(req.Name)
		}
		for i, o := range st.Overlays {
			output.RemoveHold(req.Disks[i].Source, o)
		}
		os.RemoveAll(dir)
	}()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fault.Wrap(fault.OutputNotWritable, dir, err, "cannot create the domain's folder")
	}
	os.Chmod(dir, 0o755) // libvirt runs QEMU as another user
	for i, d := range req.Disks {
		f, _, _ := detectFormat(d.Source)
		ov := filepath.Join(dir, fmt.Sprintf("disk%d.qcow2", i))
		if err := e.qemu.CreateOverlay(ctx, ov, d.Source, f.QemuDriver()); err != nil {
			return nil, toolFault(ctx, err, d.Source, "cannot create the domain's overlay on the disk")
		}
		os.Chmod(ov, 0o644)
		st.Overlays = append(st.Overlays, ov)
		if err := output.AddHold(d.Source, output.Hold{Domain: req.Name, URI: e.LibvirtURI(), Overlay: ov}); err != nil {
			return nil, fault.Wrap(fault.OutputNotWritable, d.Source, err, "cannot record that the domain uses the disk")
		}
	}
	for _, n := range req.NICs {
		if n.MAC == "" {
			n.MAC = randomMAC()
		}
		st.MACs = append(st.MACs, n.MAC)
	}
	var info *guest.Info
	test := req.BootTest.Enabled && req.Running && len(req.Disks) > 0
	if test {
		if info, err = e.domainGuest(ctx, req, st); err != nil {
			return nil, err
		}
		// Linux guests get a planted marker; any other guest is tested
		// only against a success_pattern it writes to its serial console.
		test = info.HasOS() && (info.OS == "linux" || req.BootTest.SuccessPattern != "")
	}
	planted := test && info.OS == "linux"
	if err := checkBootPhases(req, info); err != nil {
		return nil, err
	}
	a, _ := e.Accel(ctx)
	opts := validate.WithDefaults(req.BootTest.Options, string(a.Mode))
	phase := func(bus string, last bool) (*validate.Result, error) {
		nonce := validate.NewNonce()
		if planted {
			if err := e.instrumentOnce(ctx, st.Overlays[0], info, nonce, !last); err != nil {
				return nil, err
			}
		}
		s, err := e.spec(ctx, req, st, bus)
		if err != nil {
			return nil, err
		}
		x, err := s.XML()
		if err != nil {
			return nil, err
		}
		di, err := hv.Define(x)
		if err != nil {
			return nil, fault.Wrap(fault.HypervisorFailed, req.Name, err, "libvirt refused the domain definition")
		}
		defined, st.UUID = true, di.UUID
		os.Remove(st.ConsoleLog)
		if err := hv.Start(req.Name); err != nil {
			return nil, fault.Wrap(fault.HypervisorFailed, req.Name, err, "the domain did not start")
		}
		wctx, cancel := context.WithTimeout(ctx, opts.Timeout)
		defer cancel()
		o := opts
		o.DiskBus = s.Disks[0].Bus
		r, err := validate.Watch(wctx, st.ConsoleLog, nonce, o, func() error {
			i, ok, err := hv.Lookup(req.Name)
			if err != nil || !ok {
				return fmt.Errorf("the domain disappeared")
			}
			if i.State != domain.StateRunning {
				return fmt.Errorf("the domain stopped (%s)", i.State)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		r.Accel, r.DiskBus, r.NICModel, r.Firmware = string(a.Mode), o.DiskBus, nicModel(req), st.Firmware
		return r, nil
	}

	if test && req.InitialBootBus != "" {
		emit(fmt.Sprintf("phase 1: booting on %s until the guest is up", req.InitialBootBus), nil)
		r, err := phase(req.InitialBootBus, false)
		if err != nil {
			return nil, err
		}
		st.Phases = append(st.Phases, r)
		if !r.Passed() {
			return nil, BootTestError(r, domainSite(req))
		}
		// A guest with the planted marker powers itself off after the
		// first boot; the power button and then the plug are for a guest
		// that does not, and for guests without the marker at once.
		stopped := false
		if planted {
			sctx, cancel := context.WithTimeout(ctx, shutdownTimeout(req))
			stopped = waitShutOff(sctx, hv, req.Name)
			cancel()
		}
		if !stopped {
			emit("phase 1 is done; pressing the power button (the plug is pulled after shutdown_timeout)", nil)
			sctx, cancel := context.WithTimeout(ctx, shutdownTimeout(req))
			err = hv.Shutdown(sctx, req.Name)
			cancel()
			if err != nil {
				return nil, fault.Wrap(fault.HypervisorFailed, req.Name, err, "the domain did not stop after its first boot")
			}
		}
		emit("phase 2: booting on the disks' own bus", nil)
	}
	if test {
		r, err := phase("", true)
		if err != nil {
			return nil, err
		}
		st.Phases = append(st.Phases, r)
		st.BootTest = r
		if !r.Passed() {
			return nil, BootTestError(r, domainSite(req))
		}
	} else {
		s, err := e.spec(ctx, req, st, "")
		if err != nil {
			return nil, err
		}
		x, err := s.XML()
		if err != nil {
			return nil, err
		}
		di, err := hv.Define(x)
		if err != nil {
			return nil, fault.Wrap(fault.HypervisorFailed, req.Name, err, "libvirt refused the domain definition")
		}
		defined, st.UUID = true, di.UUID
		if req.Running {
			if err := hv.Start(req.Name); err != nil {
				return nil, fault.Wrap(fault.HypervisorFailed, req.Name, err, "the domain did not start")
			}
		}
	}
	di, _, err := hv.Lookup(req.Name)
	if err != nil {
		return nil, fault.Wrap(fault.HypervisorFailed, req.Name, err, "cannot read the defined domain")
	}
	st.UUID, st.XML = di.UUID, di.XML
	for i, o := range st.Overlays {
		output.AddHold(req.Disks[i].Source, output.Hold{Domain: req.Name, UUID: st.UUID, URI: e.LibvirtURI(), Overlay: o})
	}
	emit("domain ready", map[string]any{"uuid": st.UUID, "type": st.Type})
	return st, nil
}

func nicModel(req DomainRequest) string {
	if len(req.NICs) == 0 {
		return ""
	}
	return req.NICs[0].Model
}

func shutdownTimeout(req DomainRequest) time.Duration {
	if req.ShutdownTimeout > 0 {
		return req.ShutdownTimeout
	}
	return 3 * time.Minute
}

// checkDomainDisks refuses disks that are missing or not images, before
// anything is defined.
func checkDomainDisks(req DomainRequest, missingOK bool) error {
	if len(req.Disks) == 0 {
		return fault.New(fault.InvalidRequest, req.Name, "the domain has no disks").WithHint("Give it at least one entry in disks.")
	}
	for i, d := range req.Disks {
		if _, err := os.Stat(d.Source); err != nil {
			if missingOK {
				continue
			}
			return fault.New(fault.SourceMissing, d.Source, "disk %d of the domain does not exist", i).
				WithHint("Point disks[%d].path at a converted image (vmconv_disk_conversion.<name>.output.path).", i)
		}
		if _, ok, _ := detectFormat(d.Source); !ok {
			return fault.New(fault.UnknownFormat, d.Source, "disk %d of the domain is not a recognisable disk image", i).
				WithHint("Point disks[%d].path at a converted image (vmconv_disk_conversion.<name>.output.path).", i)
		}
	}
	return nil
}

func detectFormat(path string) (diskformat.Format, bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", false, err
	}
	defer f.Close()
	d, ok, err := diskformat.Detect(f)
	return d.Format, ok, err
}

// domainGuest finds the guest on the first disk: from its conversion
// report, or by inspecting the overlay.
func (e *Engine) domainGuest(ctx context.Context, req DomainRequest, st *DomainState) (*guest.Info, error) {
	if rep, err := ReadReport(req.Disks[0].Source); err == nil && rep.Result.Guest != nil {
		return rep.Result.Guest, nil
	}
	work, err := e.scratch("domain-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	s, _, err := e.openAppliance(ctx, st.Overlays[0], "qcow2", work)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	return inspect.Inspect(s, inspect.Options{})
}

// waitShutOff waits until the domain is shut off or ctx ends.
func waitShutOff(ctx context.Context, hv domain.Hypervisor, name string) bool {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		if i, ok, err := hv.Lookup(name); err == nil && ok && i.State == domain.StateShutOff {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
}

// instrumentOnce plants the self-removing boot marker on a domain's disk;
// with poweroff the guest also shuts itself down after reporting.
func (e *Engine) instrumentOnce(ctx context.Context, overlay string, info *guest.Info, nonce string, poweroff bool) error {
	work, err := e.scratch("instrument-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	s, _, err := e.openAppliance(ctx, overlay, "qcow2", work)
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.MountRoot(info.Root); err != nil {
		return fault.Wrap(fault.BootTestFailed, overlay, err, "cannot mount the guest to prepare its boot test")
	}
	plant := validate.InstrumentOnce
	if poweroff {
		plant = validate.InstrumentPhase
	}
	if err := plant(s, nonce); err != nil {
		return fault.Wrap(fault.BootTestFailed, overlay, err, "cannot prepare the guest for its boot test")
	}
	return s.Sync()
}

// UpdateDomain applies in-place changes: memory and vCPUs (a graceful
// shutdown, a new definition, a start) and the running state.
func (e *Engine) UpdateDomain(ctx context.Context, req DomainRequest, st *DomainState) error {
	hv, err := e.hypervisor()
	if err != nil {
		return err
	}
	info, ok, err := hv.Lookup(st.UUID)
	if err != nil || !ok {
		return fault.New(fault.RemoteNotFound, req.Name, "the domain no longer exists").WithHint("Run terraform apply again to recreate it.")
	}
	obs, err := domain.Observe(info.XML)
	if err != nil {
		return err
	}
	if obs.MemoryMiB != uint(req.MemoryMiB) || obs.VCPUs != uint(req.VCPUs) {
		if info.State == domain.StateRunning {
			sctx, cancel := context.WithTimeout(ctx, shutdownTimeout(req))
			err := hv.Shutdown(sctx, req.Name)
			cancel()
			if err != nil {
				return fault.Wrap(fault.HypervisorFailed, req.Name, err, "cannot stop the domain to change its memory or vCPUs")
			}
		}
		s, err := e.spec(ctx, req, st, "")
		if err != nil {
			return err
		}
		x, err := s.XML()
		if err != nil {
			return err
		}
		if _, err := hv.Define(x); err != nil {
			return fault.Wrap(fault.HypervisorFailed, req.Name, err, "libvirt refused the new definition")
		}
		info.State = domain.StateShutOff
	}
	switch {
	case req.Running && info.State != domain.StateRunning:
		if err := hv.Start(req.Name); err != nil {
			return fault.Wrap(fault.HypervisorFailed, req.Name, err, "the domain did not start")
		}
	case !req.Running && info.State == domain.StateRunning:
		sctx, cancel := context.WithTimeout(ctx, shutdownTimeout(req))
		defer cancel()
		if err := hv.Shutdown(sctx, req.Name); err != nil {
			return fault.Wrap(fault.HypervisorFailed, req.Name, err, "the domain did not stop")
		}
	}
	if i, ok, _ := hv.Lookup(req.Name); ok {
		st.XML = i.XML
	}
	return nil
}

// DeleteDomain stops and undefines the domain and removes its overlays and
// holds. What is already gone is not an error.
func (e *Engine) DeleteDomain(ctx context.Context, name string, disks []string, overlays []string) error {
	hv, err := e.hypervisor()
	if err != nil {
		return err
	}
	if err := hv.Destroy(name); err != nil {
		return fault.Wrap(fault.HypervisorFailed, name, err, "cannot stop the domain")
	}
	if err := hv.Undefine(name); err != nil {
		return fault.Wrap(fault.HypervisorFailed, name, err, "cannot undefine the domain")
	}
	for i, o := range overlays {
		if i < len(disks) {
			output.RemoveHold(disks[i], o)
		}
	}
	os.RemoveAll(e.domainDir(name))
	return nil
}

// DiskHolders lists the domains that run on an output, for refusing to
// delete it under them.
func DiskHolders(outputPath string) ([]string, error) {
	hs, err := output.Holds(outputPath)
	var names []string
	for _, h := range hs {
		names = append(names, h.Domain)
	}
	return names, err
}

// ParseMACs reads the MACs libvirt assigned.
func ParseMACs(xml string) []string {
	o, err := domain.Observe(xml)
	if err != nil {
		return nil
	}
	return o.MACs
}

// SweepDomains destroys and undefines every domain whose name starts with
// prefix, and removes its vmconv disks: tests use it to clean up domains a
// failed run leaked.
func (e *Engine) SweepDomains(prefix string) ([]string, error) {
	hv, err := e.hypervisor()
	if err != nil {
		return nil, err
	}
	ds, err := hv.List()
	if err != nil {
		return nil, err
	}
	var swept []string
	for _, d := range ds {
		if !strings.HasPrefix(d.Name, prefix) {
			continue
		}
		hv.Destroy(d.Name)
		if err := hv.Undefine(d.Name); err != nil {
			return swept, err
		}
		if disks, err := domain.ObserveDisks(d.XML); err == nil {
			for _, disk := range disks {
				if out, ok := backingOf(disk.Path); ok {
					output.RemoveHold(out, disk.Path)
				}
			}
		}
		os.RemoveAll(e.domainDir(d.Name))
		swept = append(swept, d.Name)
	}
	return swept, nil
}

func backingOf(overlay string) (string, bool) {
	out, err := exec.Command("qemu-img", "info", "--output=json", "-U", overlay).Output()
	if err != nil {
		return "", false
	}
	var i struct {
		Backing string `json:"full-backing-filename"`
	}
	return i.Backing, json.Unmarshal(out, &i) == nil && i.Backing != ""
}
