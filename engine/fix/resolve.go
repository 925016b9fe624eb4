package fix

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/vmconv/terraform-provider-vmconv/engine/guest"
)

// Device names that depend on the hypervisor's disk controller.
var (
	// /dev/sda1, /dev/hda2, /dev/xvdb: the letter is the disk's position.
	kernelName = regexp.MustCompile(`^/dev/(sd|hd|xvd|vd)([a-z]+)([0-9]*)$`)
	// VMware's by-path for a SCSI disk: pci-0000:03:00.0-scsi-0:0:T:0[-partN].
	byPath = regexp.MustCompile(`^/dev/disk/by-path/(.*?)(-part([0-9]+))?$`)
	byID   = regexp.MustCompile(`^/dev/disk/by-id/(.*?)(-part([0-9]+))?$`)
	target = regexp.MustCompile(`-(?:scsi|sas|ata)-[0-9]+:[0-9]+:([0-9]+):[0-9]+$|-ata-([0-9]+)$`)
	// /dev/nvme0n1p2: controller 0, namespace 1, partition 2.
	nvmeName = regexp.MustCompile(`^/dev/nvme([0-9]+)n([0-9]+)(p([0-9]+))?$`)
)

// isUnstable reports whether a device name changes with the hypervisor, and
// whether it is a by-path name.
func isUnstable(dev string) (unstable, bypath bool) {
	switch {
	case kernelName.MatchString(dev), nvmeName.MatchString(dev):
		return true, false
	case strings.HasPrefix(dev, "/dev/disk/by-path/"):
		return true, true
	case strings.HasPrefix(dev, "/dev/disk/by-id/"):
		return true, false
	}
	return false, false
}

// applianceDevice maps a guest's hypervisor-dependent device name to the
// device the appliance sees. The appliance has the guest's disks attached
// in the order the guest named them (Info.Disks), as sda, sdb...; a disk
// converted alone is sda. It reports false for a name that points at a disk
// the appliance does not have.
func applianceDevice(info *guest.Info, dev string) (string, bool) {
	disk := func(i int, part string) (string, bool) {
		n := max(1, len(info.Disks))
		if i < 0 || i >= n {
			return "", false
		}
		return "/dev/sd" + letters(i) + part, true
	}
	if m := kernelName.FindStringSubmatch(dev); m != nil {
		return disk(letterIndex(m[2]), m[3])
	}
	if m := nvmeName.FindStringSubmatch(dev); m != nil {
		c, _ := strconv.Atoi(m[1])
		ns, _ := strconv.Atoi(m[2])
		return disk(slotIndex(info, "nvme", c, ns-1), m[4])
	}
	if m := byPath.FindStringSubmatch(dev); m != nil {
		if t := target.FindStringSubmatch(m[1]); t != nil {
			if t[1] != "" { // SCSI target: the unit on its controller
				v, _ := strconv.Atoi(t[1])
				return disk(slotIndex(info, "scsi", -1, v), m[3])
			}
			v, _ := strconv.Atoi(t[2]) // SATA port, from 1
			return disk(slotIndex(info, "sata", -1, v-1), m[3])
		}
		return disk(0, m[3])
	}
	if m := byID.FindStringSubmatch(dev); m != nil && len(info.Disks) <= 1 {
		// by-id names carry the disk's serial, which nothing maps to a
		// slot; with one disk there is only one it can be.
		return disk(0, m[3])
	}
	return "", false
}

// slotIndex finds the attached disk at a slot. Without a layout (one disk
// converted alone) the first slot of any bus is that disk. controller -1
// matches the unit on any controller of the bus, if only one has it.
func slotIndex(info *guest.Info, bus string, controller, unit int) int {
	if len(info.Disks) == 0 {
		if unit == 0 && (controller <= 0) {
			return 0
		}
		return -1
	}
	found := -1
	for i, d := range info.Disks {
		if d.Bus == bus && d.Unit == unit && (controller < 0 || d.Controller == controller) {
			if found >= 0 {
				return -1 // ambiguous across controllers
			}
			found = i
		}
	}
	return found
}

// letterIndex turns a disk's letters (a, b... z, aa) into its position.
func letterIndex(s string) int {
	n := 0
	for _, c := range s {
		n = n*26 + int(c-'a') + 1
	}
	return n - 1
}

// letters is letterIndex's inverse.
func letters(i int) string {
	s := ""
	for i++; i > 0; i = (i - 1) / 26 {
		s = string(rune('a'+(i-1)%26)) + s
	}
	return s
}

// stableName returns the most stable name of a file system: UUID=, then
// PARTUUID=, then LABEL=.
func stableName(f guest.Filesystem) (string, bool) {
	switch {
	case f.UUID != "":
		return "UUID=" + f.UUID, true
	case f.PartUUID != "":
		return "PARTUUID=" + f.PartUUID, true
	case f.Label != "":
		return "LABEL=" + f.Label, true
	}
	return "", false
}

// resolve finds the file system a guest device reference names, whatever
// its form: a device path, an LVM name, UUID=, LABEL=, PARTUUID=.
func resolve(info *guest.Info, ref string) (guest.Filesystem, bool) {
	ref = strings.Trim(ref, `"'`)
	for _, pfx := range []struct{ p string }{{"UUID="}, {"LABEL="}, {"PARTUUID="}} {
		if v, ok := strings.CutPrefix(ref, pfx.p); ok {
			v = strings.Trim(v, `"'`)
			for _, f := range info.Filesystems {
				if (pfx.p == "UUID=" && strings.EqualFold(f.UUID, v)) || (pfx.p == "LABEL=" && f.Label == v) ||
					(pfx.p == "PARTUUID=" && strings.EqualFold(f.PartUUID, v)) {
					return f, true
				}
			}
			return guest.Filesystem{}, false
		}
	}
	for _, pfx := range []string{"/dev/disk/by-uuid/", "/dev/disk/by-label/", "/dev/disk/by-partuuid/"} {
		if v, ok := strings.CutPrefix(ref, pfx); ok {
			key := map[string]string{"/dev/disk/by-uuid/": "UUID=", "/dev/disk/by-label/": "LABEL=", "/dev/disk/by-partuuid/": "PARTUUID="}[pfx]
			return resolve(info, key+v)
		}
	}
	if dev, ok := applianceDevice(info, ref); ok {
		return info.FilesystemBy(dev)
	}
	// LVM: /dev/mapper/vg-lv and /dev/vg/lv name the same volume.
	if v, ok := strings.CutPrefix(ref, "/dev/mapper/"); ok {
		if vg, lv, ok := splitMapper(v); ok {
			return info.FilesystemBy(fmt.Sprintf("/dev/%s/%s", vg, lv))
		}
	}
	return info.FilesystemBy(ref)
}

// splitMapper splits a device-mapper name "vg-lv" (dashes inside names are
// doubled) into its volume group and logical volume.
func splitMapper(name string) (vg, lv string, ok bool) {
	for i := 0; i < len(name); i++ {
		if name[i] != '-' {
			continue
		}
		if i+1 < len(name) && name[i+1] == '-' {
			i++
			continue
		}
		return strings.ReplaceAll(name[:i], "--", "-"), strings.ReplaceAll(name[i+1:], "--", "-"), true
	}
	return "", "", false
}
