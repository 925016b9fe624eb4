// Package ovf reads OVF descriptors and OVA archives: the VM's shape (CPUs,
// memory, firmware, disks, NICs) from the descriptor, with govmomi's
// parser, and the disks from the archive, streamed once and bounded by
// what the descriptor declares and the room in the cache. Downloading an
// OVA is engine/fetch's job; this package sees only local files.
package ovf

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	govmomiovf "github.com/vmware/govmomi/ovf"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
)

// OVF is what a migration needs from an OVF descriptor.
type OVF struct {
	Name      string    `json:"name"`
	CPUs      int       `json:"cpus"`
	MemoryMiB int       `json:"memory_mib"`
	Firmware  string    `json:"firmware"` // bios or uefi
	OSType    string    `json:"os_type,omitempty"`
	Disks     []OVFDisk `json:"disks"`
	NICs      []OVFNIC  `json:"nics"`
	// SlotProblem says why the disks' slots are not certain (two disks in
	// one slot); a whole VM is refused with it, one disk converts alone.
	SlotProblem string `json:"slot_problem,omitempty"`
}

// OVFDisk is one disk and the archive member that holds it.
type OVFDisk struct {
	ID       string `json:"id"`
	File     string `json:"file"`
	Capacity int64  `json:"capacity"`
	// Size is the file's size, ovf:size in References; 0 when not given.
	Size   int64  `json:"size,omitempty"`
	Format string `json:"format,omitempty"`
	// Bus, Controller and Unit are where the VM attached the disk (its
	// drive item's controller and AddressOnParent); a disk no drive item
	// attaches is given the next free SCSI unit, in the OVF's order.
	Bus        string `json:"bus"`
	Controller int    `json:"controller"`
	Unit       int    `json:"unit"`
}

// OVFNIC is one network adapter.
type OVFNIC struct {
	Network string `json:"network,omitempty"`
	Model   string `json:"model,omitempty"`
	MAC     string `json:"mac,omitempty"`
}

// CIM resource types (DSP0004) the OVF's hardware items use.
const (
	cimProcessor = 3
	cimMemory    = 4
	cimEthernet  = 10
	cimIDE       = 5
	cimSCSI      = 6
	cimOther     = 20 // SATA and NVMe controllers, told apart by subtype
	cimDisk      = 17
)

// ParseOVF reads an OVF descriptor with govmomi's ovf package.
func ParseOVF(r io.Reader, file string) (*OVF, error) {
	env, err := govmomiovf.Unmarshal(io.LimitReader(r, 16<<20))
	if err != nil {
		return nil, fault.Wrap(fault.CorruptDescriptor, file, err, "the OVF descriptor is not valid XML")
	}
	vs := env.VirtualSystem
	if vs == nil {
		return nil, fault.New(fault.UnsupportedFormat, file, "the OVF holds no single VirtualSystem (a vApp collection is not supported)").
			WithHint("Export the VM itself, not a vApp.")
	}
	out := &OVF{Name: vs.ID, Firmware: "bios"}
	if vs.Name != nil && *vs.Name != "" {
		out.Name = *vs.Name
	}
	if vs.OperatingSystem != nil && vs.OperatingSystem.OSType != nil {
		out.OSType = *vs.OperatingSystem.OSType
	}
	files := map[string]govmomiovf.File{}
	for _, f := range env.References {
		files[f.ID] = f
	}
	if env.Disk != nil {
		for _, d := range env.Disk.Disks {
			if d.FileRef == nil {
				continue // a blank disk: nothing to convert
			}
			f, ok := files[*d.FileRef]
			if !ok {
				return nil, fault.New(fault.CorruptDescriptor, file, "disk %s names file %q, which References does not list", d.DiskID, *d.FileRef)
			}
			// A capacity that is not a number (an OVF property reference,
			// "${size}") stays 0, unknown. Sizes are bounds on what is
			// written: one that overflows is refused, not wrapped.
			capacity, _ := strconv.ParseInt(d.Capacity, 10, 64)
			capacity = max(0, capacity)
			if d.CapacityAllocationUnits != nil {
				unit := govmomiovf.ParseCapacityAllocationUnits(*d.CapacityAllocationUnits)
				if unit > 0 && capacity > math.MaxInt64/unit {
					return nil, fault.New(fault.CorruptDescriptor, file, "disk %s declares a capacity of %s × %s, which no disk has", d.DiskID, d.Capacity, *d.CapacityAllocationUnits)
				}
				capacity *= unit
			}
			if f.Size > math.MaxInt64 {
				return nil, fault.New(fault.CorruptDescriptor, file, "file %q declares a size of %d bytes (ovf:size), which no file has", f.Href, f.Size)
			}
			od := OVFDisk{ID: d.DiskID, File: f.Href, Capacity: capacity, Size: int64(f.Size)}
			if d.Format != nil {
				od.Format = *d.Format
			}
			out.Disks = append(out.Disks, od)
		}
	}
	if len(out.Disks) == 0 {
		return nil, fault.New(fault.CorruptDescriptor, file, "the OVF describes no disk with a file").WithHint("Check that the export included the disks.")
	}
	for _, hw := range vs.VirtualHardware {
		for _, c := range append(hw.Config, hw.ExtraConfig...) {
			if c.Key == "firmware" && c.Value == "efi" {
				out.Firmware = "uefi"
			}
		}
		out.SlotProblem = placeDisks(out.Disks, hw.Item)
		for _, it := range hw.Item {
			if it.ResourceType == nil {
				continue
			}
			q := int64(0)
			if it.VirtualQuantity != nil {
				q = int64(*it.VirtualQuantity)
			}
			switch *it.ResourceType {
			case cimProcessor:
				out.CPUs = int(q)
			case cimMemory:
				unit := int64(1 << 20)
				if it.AllocationUnits != nil {
					unit = govmomiovf.ParseCapacityAllocationUnits(*it.AllocationUnits)
				}
				out.MemoryMiB = int(q * unit >> 20)
			case cimEthernet:
				n := OVFNIC{}
				if len(it.Connection) > 0 {
					n.Network = it.Connection[0]
				}
				if it.ResourceSubType != nil {
					n.Model = strings.ToLower(*it.ResourceSubType)
				}
				if it.Address != nil {
					n.MAC = strings.ToLower(*it.Address)
				}
				out.NICs = append(out.NICs, n)
			}
		}
	}
	return out, nil
}

// String describes the OVF for logs.
func (o *OVF) String() string {
	return fmt.Sprintf("%s: %d CPUs, %d MiB, %s, %d disks, %d NICs", o.Name, o.CPUs, o.MemoryMiB, o.Firmware, len(o.Disks), len(o.NICs))
}
