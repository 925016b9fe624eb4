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
)

// isUnstable reports whether a device name changes with the hypervisor, and
// whether it is a by-path name.
func isUnstable(dev string) (unstable, bypath bool) {
	switch {
	case kernelName.MatchString(dev):
		return true, false
	case strings.HasPrefix(dev, "/dev/disk/by-path/"):
		return true, true
	case strings.HasPrefix(dev, "/dev/disk/by-id/"):
		return true, false
	}
	return false, false
}

// applianceDevice maps a guest's hypervisor-dependent device name to the
// device the appliance sees, which holds only this disk as /dev/sda. It
// reports false for a name that points at another disk.
func applianceDevice(dev string) (string, bool) {
	if m := kernelName.FindStringSubmatch(dev); m != nil {
		if m[2] != "a" {
			return "", false
		}
		return "/dev/sda" + m[3], true
	}
	if m := byPath.FindStringSubmatch(dev); m != nil {
		if t := target.FindStringSubmatch(m[1]); t != nil {
			n := t[1]
			if n == "" {
				n = t[2]
			}
			if v, _ := strconv.Atoi(n); v != 0 && !(t[2] != "" && v == 1) {
				return "", false // another disk on the controller
			}
		}
		return "/dev/sda" + m[3], true
	}
	if m := byID.FindStringSubmatch(dev); m != nil {
		return "/dev/sda" + m[3], true
	}
	return "", false
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
	if dev, ok := applianceDevice(ref); ok {
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
