package ovf

import (
	"sort"
	"strconv"
	"strings"

	govmomiovf "github.com/vmware/govmomi/ovf"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
)

// busRanks order a VM's disks the way the guest's firmware and kernel
// enumerate them, as engine/vmx orders a .vmx's.
var busRanks = map[string]int{"scsi": 0, "sata": 1, "nvme": 2, "ide": 3}

// placeDisks sets each disk's slot from the hardware items: a disk drive
// item names its disk (HostResource ovf:/disk/<id>), its controller
// (Parent) and its unit (AddressOnParent). A slot taken twice is refused:
// the guest could not have seen two disks there, so the descriptor is
// wrong and vmconv would be guessing which disk is which.
func placeDisks(disks []OVFDisk, items []govmomiovf.ResourceAllocationSettingData, file string) error {
	type controller struct {
		bus string
		n   int
	}
	ctls := map[string]controller{}
	seen := map[string]int{}
	for _, it := range items {
		if it.ResourceType == nil {
			continue
		}
		bus := ""
		switch *it.ResourceType {
		case cimSCSI:
			bus = "scsi"
		case cimIDE:
			bus = "ide"
		case cimOther:
			sub := ""
			if it.ResourceSubType != nil {
				sub = strings.ToLower(*it.ResourceSubType)
			}
			switch {
			case strings.Contains(sub, "nvme"):
				bus = "nvme"
			case strings.Contains(sub, "sata") || strings.Contains(sub, "ahci"):
				bus = "sata"
			}
		}
		if bus == "" {
			continue
		}
		n := seen[bus]
		if it.Address != nil {
			if a, err := strconv.Atoi(strings.TrimSpace(*it.Address)); err == nil && a >= 0 && a < 64 {
				n = a
			}
		}
		seen[bus] = n + 1
		ctls[it.InstanceID] = controller{bus, n}
	}
	placed := map[int]bool{}
	slots := map[string]string{}
	for _, it := range items {
		if it.ResourceType == nil || *it.ResourceType != cimDisk || len(it.HostResource) == 0 || it.Parent == nil {
			continue
		}
		id := it.HostResource[0]
		id = id[strings.LastIndex(id, "/")+1:]
		c, ok := ctls[*it.Parent]
		if !ok {
			continue
		}
		unit := 0
		if it.AddressOnParent != nil {
			u, err := strconv.Atoi(strings.TrimSpace(*it.AddressOnParent))
			if err != nil || u < 0 || u > 255 {
				return fault.New(fault.CorruptDescriptor, file, "disk %s's AddressOnParent %q is not a unit number", id, *it.AddressOnParent)
			}
			unit = u
		}
		for i := range disks {
			if disks[i].ID != id || placed[i] {
				continue
			}
			slot := c.bus + strconv.Itoa(c.n) + ":" + strconv.Itoa(unit)
			if other, dup := slots[slot]; dup {
				return fault.New(fault.CorruptDescriptor, file, "disks %s and %s are both attached at %s", other, id, slot).
					WithHint("Fix the OVF's disk drive items (Parent and AddressOnParent), or export the VM again.")
			}
			slots[slot] = id
			disks[i].Bus, disks[i].Controller, disks[i].Unit = c.bus, c.n, unit
			placed[i] = true
		}
	}
	next := 0
	for i := range disks {
		if placed[i] {
			continue
		}
		for slots["scsi0:"+strconv.Itoa(next)] != "" {
			next++
		}
		disks[i].Bus, disks[i].Controller, disks[i].Unit = "scsi", 0, next
		slots["scsi0:"+strconv.Itoa(next)] = disks[i].ID
	}
	return nil
}

// InSlotOrder returns the disks in the order the VM attaches them.
func (o *OVF) InSlotOrder() []OVFDisk {
	out := append([]OVFDisk(nil), o.Disks...)
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Bus != b.Bus {
			return busRanks[a.Bus] < busRanks[b.Bus]
		}
		if a.Controller != b.Controller {
			return a.Controller < b.Controller
		}
		return a.Unit < b.Unit
	})
	return out
}
