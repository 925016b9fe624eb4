package ovf

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/vmconv/terraform-provider-vmconv/engine/guest"
	govmomiovf "github.com/vmware/govmomi/ovf"
)

// placeDisks sets each disk's slot from the hardware items: a disk drive
// item names its disk (HostResource ovf:/disk/<id>), its controller
// (Parent) and its unit (AddressOnParent, optional: the next free unit of
// its controller otherwise). A descriptor that cannot be placed with
// certainty (two disks in one slot, a unit that is no number) is not
// refused here, since one disk of it still converts alone: the problem is
// returned, and a whole VM is refused with it (the guest could not have
// seen two disks there, and vmconv would be guessing which disk is which).
func placeDisks(disks []OVFDisk, items []govmomiovf.ResourceAllocationSettingData) string {
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
	slots := map[string]string{}
	slot := func(bus string, ctl, unit int) string { return bus + strconv.Itoa(ctl) + ":" + strconv.Itoa(unit) }
	place := func(i int, bus string, ctl, unit int) {
		disks[i].Bus, disks[i].Controller, disks[i].Unit = bus, ctl, unit
		slots[slot(bus, ctl, unit)] = disks[i].ID
	}
	placed := map[int]bool{}
	type pending struct {
		i int
		c controller
	}
	var later []pending
	problem := ""
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
		for i := range disks {
			if disks[i].ID != id || placed[i] {
				continue
			}
			placed[i] = true
			if it.AddressOnParent == nil {
				later = append(later, pending{i, c})
				continue
			}
			u, err := strconv.Atoi(strings.TrimSpace(*it.AddressOnParent))
			if err != nil || u < 0 || u > 255 {
				problem = fmt.Sprintf("disk %s's AddressOnParent %q is not a unit number", id, *it.AddressOnParent)
				later = append(later, pending{i, c})
				continue
			}
			if other, dup := slots[slot(c.bus, c.n, u)]; dup {
				problem = fmt.Sprintf("disks %s and %s are both attached at %s", other, id, slot(c.bus, c.n, u))
			}
			place(i, c.bus, c.n, u)
		}
	}
	free := func(bus string, ctl int) int {
		u := 0
		for slots[slot(bus, ctl, u)] != "" {
			u++
		}
		return u
	}
	for _, p := range later {
		place(p.i, p.c.bus, p.c.n, free(p.c.bus, p.c.n))
	}
	for i := range disks {
		if !placed[i] {
			place(i, "scsi", 0, free("scsi", 0))
		}
	}
	return problem
}

// InSlotOrder returns the disks in the order the VM attaches them.
func (o *OVF) InSlotOrder() []OVFDisk {
	out := append([]OVFDisk(nil), o.Disks...)
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		return guest.DiskSlot{Bus: a.Bus, Controller: a.Controller, Unit: a.Unit}.Compare(guest.DiskSlot{Bus: b.Bus, Controller: b.Controller, Unit: b.Unit}) < 0
	})
	return out
}
