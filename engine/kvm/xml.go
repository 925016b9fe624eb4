package kvm

import (
	"fmt"

	"libvirt.org/go/libvirtxml"
)

// Spec is everything a domain's definition says.
type Spec struct {
	Name      string
	UUID      string // kept when redefining an existing domain
	MemoryMiB uint
	VCPUs     uint
	// Type is kvm, or qemu for software emulation.
	Type     string
	Firmware string // bios, uefi
	// Loader, NVRAMTemplate and NVRAM are the UEFI firmware files. A
	// remote host's are not the runner's to name: with HostFirmware, its
	// libvirt picks them from the host's firmware descriptors (and keeps
	// the NVRAM where it keeps its domains').
	Loader, NVRAMTemplate, NVRAM string
	HostFirmware                 bool
	Disks                        []Disk
	NICs                         []NIC
	ConsoleLog                   string
	Emulator                     string
}

// Disk is one disk of the domain.
type Disk struct {
	Path   string // the domain-owned overlay
	Format string
	Bus    string // virtio, sata, scsi
}

// NIC is one network interface.
type NIC struct {
	Network string // a libvirt network, or "" with User
	User    bool   // user-mode networking (no host services needed)
	Model   string // virtio, e1000e, e1000, vmxnet3, rtl8139
	MAC     string
}

var devPrefix = map[string]string{"virtio": "vd", "sata": "sd", "scsi": "sd"}

// XML renders the libvirt domain definition.
func (s Spec) XML() (string, error) {
	d := libvirtxml.Domain{
		Type:   s.Type,
		Name:   s.Name,
		UUID:   s.UUID,
		Memory: &libvirtxml.DomainMemory{Value: s.MemoryMiB, Unit: "MiB"},
		VCPU:   &libvirtxml.DomainVCPU{Value: s.VCPUs},
		OS: &libvirtxml.DomainOS{
			Type:        &libvirtxml.DomainOSType{Arch: "x86_64", Machine: "q35", Type: "hvm"},
			BootDevices: []libvirtxml.DomainBootDevice{{Dev: "hd"}},
		},
		Features:   &libvirtxml.DomainFeatureList{ACPI: &libvirtxml.DomainFeature{}, APIC: &libvirtxml.DomainFeatureAPIC{}},
		OnPoweroff: "destroy", OnReboot: "restart", OnCrash: "destroy",
		Devices: &libvirtxml.DomainDeviceList{Emulator: s.Emulator},
	}
	if s.Type == "kvm" {
		d.CPU = &libvirtxml.DomainCPU{Mode: "host-passthrough"}
	} else {
		d.CPU = &libvirtxml.DomainCPU{Mode: "maximum"}
	}
	switch {
	case s.Firmware == "uefi" && s.HostFirmware:
		// Without secure boot, as the runner's OVMF_CODE runs locally:
		// the guests VMware ran seldom enroll keys.
		d.OS.Firmware = "efi"
		d.OS.FirmwareInfo = &libvirtxml.DomainOSFirmwareInfo{Features: []libvirtxml.DomainOSFirmwareFeature{
			{Enabled: "no", Name: "secure-boot"}, {Enabled: "no", Name: "enrolled-keys"}}}
	case s.Firmware == "uefi":
		if s.Loader == "" || s.NVRAMTemplate == "" {
			return "", fmt.Errorf("domain: UEFI needs a loader and an NVRAM template")
		}
		d.OS.Loader = &libvirtxml.DomainLoader{Path: s.Loader, Readonly: "yes", Type: "pflash"}
		d.OS.NVRam = &libvirtxml.DomainNVRam{NVRam: s.NVRAM, Template: s.NVRAMTemplate}
	}
	dev := d.Devices
	count := map[string]int{}
	scsi := false
	for _, disk := range s.Disks {
		p, ok := devPrefix[disk.Bus]
		if !ok {
			return "", fmt.Errorf("domain: unknown disk bus %q", disk.Bus)
		}
		n := count[p]
		count[p]++
		dd := libvirtxml.DomainDisk{
			Device: "disk",
			Driver: &libvirtxml.DomainDiskDriver{Name: "qemu", Type: disk.Format},
			Source: &libvirtxml.DomainDiskSource{File: &libvirtxml.DomainDiskSourceFile{File: disk.Path}},
			Target: &libvirtxml.DomainDiskTarget{Dev: fmt.Sprintf("%s%c", p, 'a'+n), Bus: disk.Bus},
		}
		if disk.Bus == "scsi" {
			scsi = true
		}
		dev.Disks = append(dev.Disks, dd)
	}
	if scsi {
		dev.Controllers = append(dev.Controllers, libvirtxml.DomainController{Type: "scsi", Model: "virtio-scsi"})
	}
	for _, nic := range s.NICs {
		i := libvirtxml.DomainInterface{Model: &libvirtxml.DomainInterfaceModel{Type: nic.Model}}
		if nic.MAC != "" {
			i.MAC = &libvirtxml.DomainInterfaceMAC{Address: nic.MAC}
		}
		if nic.User {
			i.Source = &libvirtxml.DomainInterfaceSource{User: &libvirtxml.DomainInterfaceSourceUser{}}
		} else {
			i.Source = &libvirtxml.DomainInterfaceSource{Network: &libvirtxml.DomainInterfaceSourceNetwork{Network: nic.Network}}
		}
		dev.Interfaces = append(dev.Interfaces, i)
	}
	port := uint(0)
	serial := libvirtxml.DomainSerial{
		Source: &libvirtxml.DomainChardevSource{Pty: &libvirtxml.DomainChardevSourcePty{}},
		Target: &libvirtxml.DomainSerialTarget{Port: &port},
	}
	if s.ConsoleLog != "" {
		serial.Log = &libvirtxml.DomainChardevLog{File: s.ConsoleLog, Append: "off"}
	}
	dev.Serials = []libvirtxml.DomainSerial{serial}
	dev.Consoles = []libvirtxml.DomainConsole{{Source: &libvirtxml.DomainChardevSource{Pty: &libvirtxml.DomainChardevSourcePty{}},
		Target: &libvirtxml.DomainConsoleTarget{Type: "serial", Port: &port}}}
	// A display adapter, as every VM has: without one GRUB stalls.
	dev.Videos = []libvirtxml.DomainVideo{{Model: libvirtxml.DomainVideoModel{Type: "vga"}}}
	return d.Marshal()
}

// Observed is what a live definition says, for drift detection.
type Observed struct {
	UUID      string
	MemoryMiB uint
	VCPUs     uint
	Disks     []string
	MACs      []string
	Firmware  string
}

// Observe reads a definition's XML.
func Observe(xml string) (Observed, error) {
	var d libvirtxml.Domain
	if err := d.Unmarshal(xml); err != nil {
		return Observed{}, err
	}
	o := Observed{UUID: d.UUID, Firmware: "bios"}
	if d.Memory != nil {
		o.MemoryMiB = toMiB(d.Memory.Value, d.Memory.Unit)
	}
	if d.VCPU != nil {
		o.VCPUs = d.VCPU.Value
	}
	if d.OS != nil && (d.OS.Loader != nil || d.OS.Firmware == "efi") {
		o.Firmware = "uefi"
	}
	if d.Devices != nil {
		for _, disk := range d.Devices.Disks {
			if disk.Source != nil && disk.Source.File != nil {
				o.Disks = append(o.Disks, disk.Source.File.File)
			}
		}
		for _, i := range d.Devices.Interfaces {
			if i.MAC != nil {
				o.MACs = append(o.MACs, i.MAC.Address)
			}
		}
	}
	return o, nil
}

func toMiB(v uint, unit string) uint {
	switch unit {
	case "", "KiB", "k", "K":
		return v / 1024
	case "MiB", "M", "m":
		return v
	case "GiB", "G", "g":
		return v * 1024
	case "b", "bytes":
		return v / (1 << 20)
	}
	return v
}

// ObservedDisk is a disk of a live definition.
// A volume disk (<disk type='volume'>) has Pool and Volume instead of Path.
type ObservedDisk struct{ Path, Pool, Volume, Bus string }

// ObserveDisks lists a definition's file and volume disks with their bus.
func ObserveDisks(xml string) ([]ObservedDisk, error) {
	var d libvirtxml.Domain
	if err := d.Unmarshal(xml); err != nil {
		return nil, err
	}
	var out []ObservedDisk
	if d.Devices != nil {
		for _, disk := range d.Devices.Disks {
			switch {
			case disk.Source == nil || disk.Target == nil:
			case disk.Source.File != nil:
				out = append(out, ObservedDisk{Path: disk.Source.File.File, Bus: disk.Target.Bus})
			case disk.Source.Volume != nil:
				out = append(out, ObservedDisk{Pool: disk.Source.Volume.Pool, Volume: disk.Source.Volume.Volume, Bus: disk.Target.Bus})
			}
		}
	}
	return out, nil
}

// ObserveNICs lists a definition's interfaces.
func ObserveNICs(xml string) []NIC {
	var d libvirtxml.Domain
	if d.Unmarshal(xml) != nil || d.Devices == nil {
		return nil
	}
	var out []NIC
	for _, i := range d.Devices.Interfaces {
		n := NIC{}
		if i.Model != nil {
			n.Model = i.Model.Type
		}
		if i.MAC != nil {
			n.MAC = i.MAC.Address
		}
		if i.Source != nil && i.Source.User != nil {
			n.User = true
		} else if i.Source != nil && i.Source.Network != nil {
			n.Network = i.Source.Network.Network
		}
		out = append(out, n)
	}
	return out
}

// ObserveConsoleLog returns the serial console's log file.
func ObserveConsoleLog(xml string) string {
	var d libvirtxml.Domain
	if d.Unmarshal(xml) != nil || d.Devices == nil {
		return ""
	}
	for _, s := range d.Devices.Serials {
		if s.Log != nil {
			return s.Log.File
		}
	}
	return ""
}

// Live is a defined domain as libvirt has it now, for drift detection and
// import.
type Live struct {
	Info
	Observed
	// Disks are its file-backed disks; Backing is the image a vmconv
	// overlay stands on ("" for a disk that is not an overlay).
	Disks      []LiveDisk
	NICs       []NIC
	ConsoleLog string
}

// LiveDisk is a disk of a live domain.
type LiveDisk struct {
	Path, Bus, Backing string
}

// Running says whether the domain is running.
func (l Live) Running() bool { return l.State == StateRunning }
