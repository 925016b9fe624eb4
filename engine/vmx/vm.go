package vmx

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/engine/guest"
)

// VM is what a migration needs from a .vmx.
type VM struct {
	Name      string `json:"name,omitempty"`
	GuestOS   string `json:"guest_os,omitempty"`
	Firmware  string `json:"firmware"` // bios or uefi
	MemoryMiB int    `json:"memory_mib"`
	CPUs      int    `json:"cpus"`
	// Disks are the hard disks in controller order (see Disks).
	Disks []Disk `json:"disks"`
	NICs  []NIC  `json:"nics"`
	// Skipped lists devices that are not disks (CD-ROMs, floppies) or not
	// present, for the plan to say what was left out.
	Skipped []string `json:"skipped,omitempty"`
}

// Disk is one hard disk of the VM.
type Disk struct {
	// Device is the slot as the .vmx names it, such as scsi0:1.
	Device     string `json:"device"`
	Bus        string `json:"bus"` // scsi, sata, nvme or ide
	Controller int    `json:"controller"`
	Unit       int    `json:"unit"`
	// Adapter is the controller's model: pvscsi, lsilogic, lsisas1068,
	// buslogic, ahci, nvme or ide.
	Adapter string `json:"adapter"`
	// FileName is the disk's current file (the newest snapshot's), as
	// written: relative to the VM's folder, or absolute.
	FileName string `json:"file_name"`
	Line     int    `json:"-"`
}

// NIC is one network adapter.
type NIC struct {
	Device      string `json:"device"` // ethernet0
	MAC         string `json:"mac"`
	AddressType string `json:"address_type"` // generated, static, vpx
	Model       string `json:"model"`        // vmxnet3, e1000, e1000e...
	Network     string `json:"network,omitempty"`
}

// limits are each bus's controllers and units per controller.
var limits = map[string]struct{ controllers, units int }{
	"scsi": {4, 64}, "sata": {4, 30}, "nvme": {4, 64}, "ide": {2, 2},
}

var (
	deviceKey = regexp.MustCompile(`^(scsi|sata|nvme|ide)([0-9]+):([0-9]+)\.([a-z0-9_.]+)$`)
	nicKey    = regexp.MustCompile(`^ethernet([0-9]+)\.([a-z0-9_.]+)$`)
	macRE     = regexp.MustCompile(`^[0-9a-f]{2}(:[0-9a-f]{2}){5}$`)
)

// VM reads the VM's shape from the file.
func (f *File) VM() (*VM, error) {
	vm := &VM{Firmware: "bios", CPUs: 1}
	vm.Name, _ = f.Get("displayName")
	vm.GuestOS, _ = f.Get("guestOS")
	switch fw, _ := f.Get("firmware"); strings.ToLower(fw) {
	case "", "bios":
	case "efi":
		vm.Firmware = "uefi"
	default:
		return nil, errorf(f.Line("firmware"), "firmware = %q is neither bios nor efi", fw)
	}
	var err error
	if vm.MemoryMiB, err = f.int("memSize", 0, 24<<20); err != nil {
		return nil, err
	}
	if vm.CPUs, err = f.int("numvcpus", 1, 768); err != nil {
		return nil, err
	}
	if vm.Disks, vm.Skipped, err = f.disks(); err != nil {
		return nil, err
	}
	if vm.NICs, err = f.nics(); err != nil {
		return nil, err
	}
	return vm, nil
}

// int reads a whole number in [lo, hi]; an absent key reads as lo.
func (f *File) int(key string, lo, hi int) (int, error) {
	v, ok := f.Get(key)
	if !ok {
		return lo, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, errorf(f.Line(key), "%s = %q is not a whole number from %d to %d", key, v, lo, hi)
	}
	return n, nil
}

func (f *File) present(key string) bool {
	v, ok := f.Get(key)
	return ok && strings.EqualFold(v, "TRUE")
}

func (f *File) disks() ([]Disk, []string, error) {
	slots := map[guest.DiskSlot]bool{}
	var order []guest.DiskSlot
	for key := range f.values {
		m := deviceKey.FindStringSubmatch(key)
		if m == nil {
			continue
		}
		c, err1 := strconv.Atoi(m[2])
		u, err2 := strconv.Atoi(m[3])
		lim := limits[m[1]]
		if err1 != nil || err2 != nil || c >= lim.controllers || u >= lim.units {
			return nil, nil, errorf(f.Line(key), "%s names %s%s:%s, which a VM cannot have (%s: at most %d controllers of %d units)", key, m[1], m[2], m[3], m[1], lim.controllers, lim.units)
		}
		s := guest.DiskSlot{Bus: m[1], Controller: c, Unit: u}
		if !slots[s] {
			slots[s] = true
			order = append(order, s)
		}
	}
	// The order the guest enumerates them in, and so the order they are
	// attached on KVM: the first is the one it boots from.
	sort.Slice(order, func(i, j int) bool {
		return order[i].Compare(order[j]) < 0
	})
	var disks []Disk
	var skipped []string
	files := map[string]string{}
	for _, s := range order {
		dev := s.String()
		if !f.present(dev + ".present") {
			skipped = append(skipped, dev+" (not present)")
			continue
		}
		typ, _ := f.Get(dev + ".deviceType")
		name, hasName := f.Get(dev + ".fileName")
		lt := strings.ToLower(typ)
		switch {
		case strings.Contains(lt, "cdrom") || (lt == "" && strings.HasSuffix(strings.ToLower(name), ".iso")):
			skipped = append(skipped, dev+" (CD-ROM)")
			continue
		case lt == "rawdisk" || lt == "plaindisk" || strings.Contains(lt, "passthru"):
			return nil, nil, errorf(f.Line(dev+".deviceType"), "%s is a %s: a physical disk or device, with no image to convert", dev, typ)
		case lt != "" && lt != "disk" && lt != "scsi-harddisk" && lt != "ata-harddisk" && lt != "sata-harddisk" && lt != "nvme-harddisk":
			return nil, nil, errorf(f.Line(dev+".deviceType"), "%s.deviceType = %q is not a kind of disk vmconv knows", dev, typ)
		}
		if !hasName || name == "" {
			return nil, nil, errorf(f.Line(dev+".present"), "%s is present but names no file (%s.fileName)", dev, dev)
		}
		if s.Bus == "scsi" && s.Unit == 7 {
			return nil, nil, errorf(f.Line(dev+".fileName"), "%s is the SCSI controller's own unit; no disk can sit there", dev)
		}
		ctl := fmt.Sprintf("%s%d", s.Bus, s.Controller)
		if s.Bus != "ide" && !f.present(ctl+".present") {
			return nil, nil, errorf(f.Line(dev+".fileName"), "%s is on %s, which is not present (%s.present)", dev, ctl, ctl)
		}
		if prev, dup := files[name]; dup {
			return nil, nil, errorf(f.Line(dev+".fileName"), "%s and %s both name the file %q", prev, dev, name)
		}
		files[name] = dev
		if len(disks) == MaxDisks {
			return nil, nil, errorf(f.Line(dev+".fileName"), "more than %d disks", MaxDisks)
		}
		disks = append(disks, Disk{Device: dev, Bus: s.Bus, Controller: s.Controller, Unit: s.Unit, Adapter: f.adapter(s.Bus, ctl), FileName: name, Line: f.Line(dev + ".fileName")})
	}
	return disks, skipped, nil
}

func (f *File) adapter(bus, ctl string) string {
	switch bus {
	case "scsi":
		if v, ok := f.Get(ctl + ".virtualDev"); ok {
			return strings.ToLower(v)
		}
		return "buslogic" // VMware's default when the key is absent
	case "sata":
		return "ahci"
	}
	return bus
}

func (f *File) nics() ([]NIC, error) {
	idx := map[int]bool{}
	for key := range f.values {
		if m := nicKey.FindStringSubmatch(key); m != nil {
			n, err := strconv.Atoi(m[1])
			if err != nil || n >= MaxNICs {
				return nil, errorf(f.Line(key), "%s names ethernet%s; a VM has at most %d network adapters", key, m[1], MaxNICs)
			}
			idx[n] = true
		}
	}
	ns := make([]int, 0, len(idx))
	for n := range idx {
		ns = append(ns, n)
	}
	sort.Ints(ns)
	var nics []NIC
	for _, n := range ns {
		dev := fmt.Sprintf("ethernet%d", n)
		if !f.present(dev + ".present") {
			continue
		}
		nic := NIC{Device: dev, Model: "e1000", AddressType: "generated"}
		if v, ok := f.Get(dev + ".virtualDev"); ok {
			nic.Model = strings.ToLower(v)
		}
		if v, ok := f.Get(dev + ".addressType"); ok {
			nic.AddressType = strings.ToLower(v)
		}
		nic.Network, _ = f.Get(dev + ".networkName")
		key := dev + ".generatedAddress"
		switch nic.AddressType {
		case "static":
			key = dev + ".address"
		case "generated", "vpx":
		default:
			return nil, errorf(f.Line(dev+".addressType"), "%s.addressType = %q is not generated, static or vpx", dev, nic.AddressType)
		}
		mac, ok := f.Get(key)
		if !ok {
			return nil, errorf(f.Line(dev+".present"), "%s has no MAC address (%s)", dev, key)
		}
		mac = strings.ToLower(mac)
		if !macRE.MatchString(mac) {
			return nil, errorf(f.Line(key), "%s = %q is not a MAC address", key, mac)
		}
		nic.MAC = mac
		nics = append(nics, nic)
	}
	return nics, nil
}

// TooBig is the fault for a .vmx of n bytes, more than MaxSize: refused
// before it is read.
func TooBig(file string, n int64) error {
	return fault.New(fault.CorruptDescriptor, file, "the .vmx is %d bytes; a VM's configuration is a few KiB (at most %d accepted)", n, MaxSize).
		WithHint("Point the source at the VM's .vmx file.")
}

// Decode parses a .vmx's bytes strictly into its VM; a fault names file
// and, when it can, the line.
func Decode(b []byte, file string) (*VM, error) {
	pf, err := Parse(b)
	var vm *VM
	if err == nil {
		vm, err = pf.VM()
	}
	if err != nil {
		fe := fault.Wrap(fault.CorruptDescriptor, file, err, "the .vmx is not a valid VM configuration: %v", err).
			WithHint("vmconv reads .vmx files strictly so that it never guesses which disk is which. Fix the line named, or export the VM as an OVA.")
		var ve *Error
		if errors.As(err, &ve) && ve.Line > 0 {
			fe = fe.WithFact("Line", fmt.Sprint(ve.Line))
		}
		return nil, fe
	}
	return vm, nil
}
