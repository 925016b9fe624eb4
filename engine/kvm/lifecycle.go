package kvm

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"time"

	"github.com/vmconv/terraform-provider-vmconv/engine/accel"
	"github.com/vmconv/terraform-provider-vmconv/engine/boottest"
	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/engine/guest"
	"github.com/vmconv/terraform-provider-vmconv/engine/inspect"
	"github.com/vmconv/terraform-provider-vmconv/engine/output"
)

// Request is a KVM domain for migrated disks.
type Request struct {
	Name      string `json:"name"`
	MemoryMiB int    `json:"memory_mib"`
	VCPUs     int    `json:"vcpus"`
	// Firmware is bios or uefi; empty takes it from the first disk's
	// conversion report, else bios.
	Firmware string        `json:"firmware,omitempty"`
	Disks    []DiskRequest `json:"disks"`
	NICs     []NIC         `json:"network_interfaces"`
	Running  bool          `json:"running"`
	BootTest boottest.Spec `json:"boot_test"`
	// InitialBootBus boots the disks on this bus first (sata), until the
	// guest has booted, before switching them to their own bus: for guests
	// that need one boot to activate drivers.
	InitialBootBus string `json:"initial_boot_bus,omitempty"`
	// ShutdownTimeout bounds a graceful shutdown before the domain is
	// forced off.
	ShutdownTimeout time.Duration `json:"shutdown_timeout"`
}

// DiskRequest is a converted image and the bus it is attached on: a file
// (Source) on this machine, or a volume of a pool on the libvirt host.
type DiskRequest struct {
	Source string `json:"source,omitempty"`
	Pool   string `json:"pool,omitempty"`
	Volume string `json:"volume,omitempty"`
	Bus    string `json:"bus"`
}

// Domain is what exists after Create.
type Domain struct {
	UUID       string             `json:"uuid"`
	XML        string             `json:"xml"`
	MACs       []string           `json:"macs"`
	Overlays   []string           `json:"overlays"`
	ConsoleLog string             `json:"console_log"`
	Firmware   string             `json:"firmware"`
	Type       string             `json:"type"`
	BootTest   *boottest.Result   `json:"boot_test,omitempty"`
	Phases     []*boottest.Result `json:"phases,omitempty"`
}

// Firmware resolves a domain's firmware: the request's, else what
// inspection found in the first disk's conversion, else BIOS.
func (m *Manager) Firmware(req Request) string {
	if req.Firmware != "" {
		return req.Firmware
	}
	if len(req.Disks) > 0 {
		if c, ok := m.conversion(req.Disks[0].Ref()); ok && c.Guest != nil && c.Guest.Firmware != "" {
			return c.Guest.Firmware
		}
	}
	return "bios"
}

// Lookup finds a domain by name or UUID.
func (m *Manager) Lookup(nameOrUUID string) (Info, bool, error) {
	hv, err := m.hypervisor()
	if err != nil {
		return Info{}, false, err
	}
	return hv.Lookup(nameOrUUID)
}

func randomMAC() string {
	b := make([]byte, 3)
	rand.Read(b)
	return fmt.Sprintf("52:54:00:%02x:%02x:%02x", b[0], b[1], b[2])
}

// spec builds the definition for req, with every disk on bus (or its own).
func (m *Manager) spec(ctx context.Context, req Request, st *Domain, bus string) (Spec, error) {
	pl := m.place(req)
	paths, err := pl.hostPaths(st)
	if err != nil {
		return Spec{}, err
	}
	a, err := m.accelFor(ctx, req)
	if err != nil {
		return Spec{}, err
	}
	s := Spec{Name: req.Name, UUID: st.UUID, MemoryMiB: uint(req.MemoryMiB), VCPUs: uint(req.VCPUs),
		Type: "qemu", Firmware: st.Firmware, ConsoleLog: st.ConsoleLog}
	if req.remote() {
		s.ConsoleLog = "" // a path on this machine, not the host's; the stream fills it
	}
	if a.Mode == accel.KVM {
		s.Type = "kvm"
	}
	if s.Firmware == "uefi" && req.remote() {
		s.HostFirmware = true
	} else if s.Firmware == "uefi" {
		code, vars, err := (boottest.Firmware{Dir: m.cfg.FirmwareDir}).Paths()
		if err != nil {
			return s, err
		}
		s.Loader, s.NVRAMTemplate = code, vars
		s.NVRAM = pl.nvram(req.Name)
	}
	for i, d := range req.Disks {
		b := d.Bus
		if bus != "" {
			b = bus
		}
		s.Disks = append(s.Disks, Disk{Path: paths[i], Format: "qcow2", Bus: b})
	}
	for i, n := range req.NICs {
		n.MAC = st.MACs[i]
		s.NICs = append(s.NICs, n)
	}
	st.Type = s.Type
	return s, nil
}

// Create defines the domain on overlays of its disks, starts it and,
// with a boot test, waits for the guest's success signal. On any failure
// everything it made is removed again.
func (m *Manager) Create(ctx context.Context, req Request, notify func(msg string, fields map[string]any)) (_ *Domain, err error) {
	emit := func(msg string, f map[string]any) {
		if notify != nil {
			notify(msg, f)
		}
	}
	if err := m.Check(ctx, req, false); err != nil {
		return nil, err
	}
	pl := m.place(req)
	if err := pl.check(ctx, req); err != nil {
		return nil, err
	}
	hv, _ := m.hypervisor()
	st := &Domain{Firmware: m.Firmware(req)}
	defer func() {
		if err == nil {
			return
		}
		// Leave nothing half-made: no definition, no overlays, no holds.
		if st.UUID != "" {
			hv.Destroy(req.Name)
			hv.Undefine(req.Name)
		}
		pl.undo(req, st)
	}()
	if err := pl.prepare(ctx, req, st); err != nil {
		return nil, err
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
		if info, err = m.domainGuest(ctx, req, st); err != nil {
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
	a, _ := m.accelFor(ctx, req)
	opts := boottest.WithDefaults(req.BootTest.Options, string(a.Mode))
	phase := func(bus string, last bool) (*boottest.Result, error) {
		nonce := boottest.NewNonce()
		if planted {
			if err := pl.instrument(ctx, st, info, nonce, !last); err != nil {
				return nil, err
			}
		}
		if st.ConsoleLog != "" {
			os.Remove(st.ConsoleLog)
		}
		work, err := m.deps.Scratch("domain-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(work)
		firstBus, err := m.defineAndStart(ctx, hv, req, st, bus, true)
		if err != nil {
			return nil, err
		}
		if now, _ := m.accelFor(ctx, req); now.Mode != a.Mode {
			// The host's KVM failed and the domain fell back to TCG:
			// give the guest emulation's longer defaults.
			emit(now.Reason, nil)
			a, opts = now, boottest.WithDefaults(req.BootTest.Options, string(now.Mode))
		}
		wctx, cancel := context.WithTimeout(ctx, opts.Timeout)
		defer cancel()
		console, stopConsole := pl.console(wctx, req, st, work)
		defer stopConsole()
		o := opts
		o.DiskBus = firstBus
		r, err := boottest.Watch(wctx, console, nonce, o, func() error {
			i, ok, err := hv.Lookup(req.Name)
			if err != nil || !ok {
				return fmt.Errorf("the domain disappeared")
			}
			if i.State != StateRunning {
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
			return nil, boottest.Error(r, m.site(req))
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
			return nil, boottest.Error(r, m.site(req))
		}
	} else if _, err := m.defineAndStart(ctx, hv, req, st, "", req.Running); err != nil {
		return nil, err
	} else if f := m.hostKVMFailure(); f != "" {
		emit(f, nil)
	}
	di, _, err := hv.Lookup(req.Name)
	if err != nil {
		return nil, fault.Wrap(fault.HypervisorFailed, req.Name, err, "cannot read the defined domain")
	}
	st.UUID, st.XML = di.UUID, di.XML
	pl.published(req, st)
	emit("domain ready", map[string]any{"uuid": st.UUID, "type": st.Type})
	return st, nil
}

func nicModel(req Request) string {
	if len(req.NICs) == 0 {
		return ""
	}
	return req.NICs[0].Model
}

func shutdownTimeout(req Request) time.Duration {
	if req.ShutdownTimeout > 0 {
		return req.ShutdownTimeout
	}
	return 3 * time.Minute
}

// domainGuest finds the guest on the first disk: from its conversion
// report, or by inspecting the overlay.
func (m *Manager) domainGuest(ctx context.Context, req Request, st *Domain) (*guest.Info, error) {
	if c, ok := m.conversion(req.Disks[0].Ref()); ok && c.Guest != nil {
		return c.Guest, nil
	}
	if req.remote() {
		return nil, fault.New(fault.BootTestImpossible, req.Name, "volume %s/%s has no vmconv report, so the guest on it is unknown and its boot cannot be judged", req.Disks[0].Pool, req.Disks[0].Volume).
			WithHint("Convert it with vmconv_disk_conversion into the pool (its report is kept beside it), set boot_test.success_pattern to a line the guest writes to its serial console, or disable boot_test.")
	}
	work, err := m.deps.Scratch("domain-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	s, err := m.deps.OpenAppliance(ctx, st.Overlays[0], "qcow2", work)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	return inspect.Inspect(s, inspect.Options{})
}

// waitShutOff waits until the domain is shut off or ctx ends.
func waitShutOff(ctx context.Context, hv Hypervisor, name string) bool {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		if i, ok, err := hv.Lookup(name); err == nil && ok && i.State == StateShutOff {
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
func (m *Manager) instrumentOnce(ctx context.Context, overlay string, info *guest.Info, nonce string, poweroff bool) error {
	work, err := m.deps.Scratch("instrument-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	s, err := m.deps.OpenAppliance(ctx, overlay, "qcow2", work)
	if err != nil {
		return err
	}
	defer s.Close()
	if _, err := inspect.Mount(s, info); err != nil {
		return fault.Wrap(fault.BootTestFailed, overlay, err, "cannot mount the guest to prepare its boot test")
	}
	plant := boottest.InstrumentOnce
	if poweroff {
		plant = boottest.InstrumentPhase
	}
	if err := plant(s, nonce); err != nil {
		return fault.Wrap(fault.BootTestFailed, overlay, err, "cannot prepare the guest for its boot test")
	}
	return s.Sync()
}

// Update applies in-place changes: memory and vCPUs (a graceful
// shutdown, a new definition, a start) and the running state.
func (m *Manager) Update(ctx context.Context, req Request, st *Domain) error {
	hv, err := m.hypervisor()
	if err != nil {
		return err
	}
	info, ok, err := hv.Lookup(st.UUID)
	if err != nil || !ok {
		return fault.New(fault.RemoteNotFound, req.Name, "the domain no longer exists").WithHint("Run terraform apply again to recreate it.")
	}
	obs, err := Observe(info.XML)
	if err != nil {
		return err
	}
	if obs.MemoryMiB != uint(req.MemoryMiB) || obs.VCPUs != uint(req.VCPUs) {
		if info.State == StateRunning {
			sctx, cancel := context.WithTimeout(ctx, shutdownTimeout(req))
			err := hv.Shutdown(sctx, req.Name)
			cancel()
			if err != nil {
				return fault.Wrap(fault.HypervisorFailed, req.Name, err, "cannot stop the domain to change its memory or vCPUs")
			}
		}
		if _, err := m.defineAndStart(ctx, hv, req, st, "", false); err != nil {
			return err
		}
		info.State = StateShutOff
	}
	switch {
	case req.Running && info.State != StateRunning:
		if err := hv.Start(req.Name); err != nil {
			return fault.Wrap(fault.HypervisorFailed, req.Name, err, "the domain did not start")
		}
	case !req.Running && info.State == StateRunning:
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

// Delete stops the domain, gracefully first (the power button, then the
// plug after shutdown), undefines it and removes its overlays and holds.
// What is already gone is not an error.
func (m *Manager) Delete(ctx context.Context, name string, disks []string, overlays []string, shutdown time.Duration) error {
	hv, err := m.hypervisor()
	if err != nil {
		return err
	}
	if i, ok, err := hv.Lookup(name); err == nil && ok && i.State == StateRunning && shutdown > 0 {
		sctx, cancel := context.WithTimeout(ctx, shutdown)
		err := hv.Shutdown(sctx, name)
		cancel()
		if err != nil {
			return fault.Wrap(fault.HypervisorFailed, name, err, "cannot stop the domain")
		}
	}
	if err := hv.Destroy(name); err != nil {
		return fault.Wrap(fault.HypervisorFailed, name, err, "cannot stop the domain")
	}
	if err := hv.Undefine(name); err != nil {
		return fault.Wrap(fault.HypervisorFailed, name, err, "cannot undefine the domain")
	}
	if len(overlays) > 0 {
		if _, _, remote := ParseVolumeRef(overlays[0]); remote {
			defer os.RemoveAll(m.domainDir(name))
			return m.removeVolumes(name, overlays)
		}
	}
	for i, o := range overlays {
		if i < len(disks) {
			output.RemoveHold(disks[i], o)
		}
	}
	os.RemoveAll(m.domainDir(name))
	return nil
}

// site describes a domain's boot for its failure hints.
func (m *Manager) site(req Request) boottest.Site {
	s := boottest.Site{Domain: req.Name, Pattern: req.BootTest.SuccessPattern != ""}
	for _, n := range req.NICs {
		s.NICs = append(s.NICs, boottest.NIC{Network: n.Network, User: n.User})
	}
	if len(req.Disks) > 0 {
		s.Disk = req.Disks[0].Ref()
		if c, ok := m.conversion(s.Disk); ok {
			f := c.Fixes
			s.Fixes = &f
		}
	}
	return s
}

// Read finds a domain by name or UUID and reads its definition; ok is
// false when there is no such domain.
func (m *Manager) Read(nameOrUUID string) (Live, bool, error) {
	info, ok, err := m.Lookup(nameOrUUID)
	if err != nil || !ok {
		return Live{}, ok, err
	}
	obs, err := Observe(info.XML)
	if err != nil {
		return Live{}, true, fault.Wrap(fault.HypervisorFailed, info.Name, err, "the domain's definition did not parse")
	}
	l := Live{Info: info, Observed: obs, NICs: ObserveNICs(info.XML), ConsoleLog: ObserveConsoleLog(info.XML)}
	disks, _ := ObserveDisks(info.XML)
	for _, d := range disks {
		if d.Path == "" {
			continue // a volume disk: vmconv defines its domains with files
		}
		ld := LiveDisk{Path: d.Path, Bus: d.Bus}
		if chain := BackingChain(d.Path); len(chain) > 0 {
			ld.Backing = chain[0]
		} else {
			m.volumeDisk(&ld)
		}
		l.Disks = append(l.Disks, ld)
	}
	return l, true, nil
}

// defineAndStart defines req with every disk on bus ("" for each disk's
// own) and, with start, starts it. It records the UUID in st, and returns
// the first disk's bus.
func (m *Manager) defineAndStart(ctx context.Context, hv Hypervisor, req Request, st *Domain, bus string, start bool) (string, error) {
	s, err := m.spec(ctx, req, st, bus)
	if err != nil {
		return "", err
	}
	x, err := s.XML()
	if err != nil {
		return "", err
	}
	di, err := hv.Define(x)
	if err != nil {
		return "", fault.Wrap(fault.HypervisorFailed, req.Name, err, "libvirt refused the domain definition")
	}
	st.UUID = di.UUID
	if start {
		if err := hv.Start(req.Name); err != nil {
			if s.Type != "kvm" || !kvmFailed(err) {
				return "", fault.Wrap(fault.HypervisorFailed, req.Name, err, "the domain did not start")
			}
			// The host lists KVM but its qemu cannot use it (a /dev/kvm
			// that cannot set the guest's MSRs, for one): run under TCG,
			// as the local probe would have decided.
			m.kvmUnusable(err)
			return m.defineAndStart(ctx, hv, req, st, bus, start)
		}
	}
	if len(s.Disks) == 0 {
		return "", nil
	}
	return s.Disks[0].Bus, nil
}
