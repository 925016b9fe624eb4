// Package virtio finds the VirtIO drivers a Windows guest needs in a
// virtio-win tree (the layout of the virtio-win ISO, unpacked): one folder
// per driver, then per Windows version, then per architecture, holding the
// INF, SYS and CAT files.
package virtio

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
)

// Driver is one driver for one Windows version and architecture.
type Driver struct {
	Name    string `json:"name"`    // viostor
	Service string `json:"service"` // the service the INF installs
	OSDir   string `json:"os_dir"`  // 2k19
	Arch    string `json:"arch"`    // amd64
	Version string `json:"version"` // from DriverVer
	Date    string `json:"date"`
	Dir     string `json:"dir"`
	INF     string `json:"inf"`
	SYS     string `json:"sys,omitempty"`
	// HardwareIDs are the PCI IDs the INF binds, such as
	// PCI\VEN_1AF4&DEV_1001&SUBSYS_00021AF4&REV_00.
	HardwareIDs []string `json:"hardware_ids"`
}

// Boot-critical storage drivers, and the ones staged for Plug and Play at
// first boot.
var (
	Storage = []string{"viostor", "vioscsi"}
	Staged  = []string{"NetKVM", "Balloon"}
)

// OSDirs are the virtio-win folder names for a Windows version, best first.
func OSDirs(major, minor int, build, installationType string) []string {
	server := !strings.EqualFold(installationType, "Client")
	b, _ := strconv.Atoi(build)
	switch {
	case major == 10 && server && b >= 26100:
		return []string{"2k25", "2k22"}
	case major == 10 && server && b >= 20348:
		return []string{"2k22", "2k19"}
	case major == 10 && server && b >= 17763:
		return []string{"2k19", "2k16"}
	case major == 10 && server:
		return []string{"2k16"}
	case major == 10 && b >= 22000:
		return []string{"w11", "w10"}
	case major == 10:
		return []string{"w10"}
	case major == 6 && minor == 3 && server:
		return []string{"2k12R2"}
	case major == 6 && minor == 3:
		return []string{"w8.1"}
	case major == 6 && minor == 2 && server:
		return []string{"2k12"}
	case major == 6 && minor == 1 && server:
		return []string{"2k8R2"}
	case major == 6 && minor == 1:
		return []string{"w7"}
	}
	return nil
}

// ArchDir is virtio-win's folder name for an architecture.
func ArchDir(arch string) string {
	switch arch {
	case "x86_64", "amd64":
		return "amd64"
	case "i386", "i686", "x86":
		return "x86"
	case "aarch64", "arm64":
		return "ARM64"
	}
	return arch
}

// Find locates each named driver for the guest. root is the virtio-win
// folder.
func Find(root string, names []string, osDirs []string, arch string) ([]Driver, error) {
	if root == "" {
		return nil, fault.New(fault.DriversMissing, "", "the guest is Windows and no VirtIO driver source is set").
			WithHint("Windows needs a VirtIO storage driver installed before its first KVM boot, or it stops with INACCESSIBLE_BOOT_DEVICE. " +
				"Download virtio-win (https://fedorapeople.org/groups/virt/virtio-win/), unpack the ISO, and set fixes = { windows = { virtio_win = \"/path/to/virtio-win\" } }.")
	}
	fi, err := os.Stat(root)
	if err != nil || !fi.IsDir() {
		return nil, fault.New(fault.DriversMissing, root, "the VirtIO driver source is not a folder").
			WithHint("Point fixes.windows.virtio_win at the unpacked virtio-win ISO (the folder that holds viostor, vioscsi, NetKVM...).")
	}
	if len(osDirs) == 0 {
		return nil, fault.New(fault.GuestUnsupported, root, "no VirtIO drivers are published for this Windows version").
			WithHint("vmconv supports Windows 7 / Server 2008 R2 and later.")
	}
	ad := ArchDir(arch)
	var out []Driver
	for _, n := range names {
		var found *Driver
		var seen []string
		for _, od := range osDirs {
			dir := filepath.Join(root, n, od, ad)
			if d, err := load(n, od, ad, dir); err == nil {
				found = d
				break
			}
			if others, _ := filepath.Glob(filepath.Join(root, n, od, "*")); len(others) > 0 {
				for _, o := range others {
					seen = append(seen, od+"/"+filepath.Base(o))
				}
			}
		}
		if found == nil {
			msg := fmt.Sprintf("%s has no %s driver for %s/%s", root, n, strings.Join(osDirs, " or "), ad)
			if len(seen) > 0 {
				msg += " (it has " + strings.Join(seen, ", ") + ": the wrong architecture)"
			}
			return nil, fault.New(fault.DriversMissing, root, "%s", msg).
				WithHint("Use a virtio-win release that supports this Windows version and architecture.")
		}
		out = append(out, *found)
	}
	return out, nil
}

var (
	driverVer = regexp.MustCompile(`(?i)^\s*DriverVer\s*=\s*([0-9/]+)\s*,\s*([0-9.]+)`)
	pciID     = regexp.MustCompile(`(?i)PCI\\VEN_[0-9A-F]{4}&DEV_[0-9A-F]{4}(&SUBSYS_[0-9A-F]{8})?(&REV_[0-9A-F]{2})?`)
	addSvc    = regexp.MustCompile(`(?i)^\s*AddService\s*=\s*([A-Za-z0-9_]+)`)
)

func load(name, osDir, arch, dir string) (*Driver, error) {
	infs, _ := filepath.Glob(filepath.Join(dir, "*.inf"))
	if len(infs) == 0 {
		return nil, os.ErrNotExist
	}
	sort.Strings(infs)
	b, err := os.ReadFile(infs[0])
	if err != nil {
		return nil, err
	}
	b = utf16ToUTF8(b)
	d := &Driver{Name: name, OSDir: osDir, Arch: arch, Dir: dir, INF: infs[0], Service: strings.ToLower(name)}
	ids := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		l := sc.Text()
		if i := strings.Index(l, ";"); i >= 0 {
			l = l[:i]
		}
		if m := driverVer.FindStringSubmatch(l); m != nil {
			d.Date, d.Version = m[1], m[2]
		}
		if m := addSvc.FindStringSubmatch(l); m != nil {
			d.Service = m[1]
		}
		for _, id := range pciID.FindAllString(l, -1) {
			ids[strings.ToUpper(id)] = true
		}
	}
	if d.Version == "" {
		return nil, fault.New(fault.DriversMissing, infs[0], "the INF has no DriverVer line")
	}
	for id := range ids {
		d.HardwareIDs = append(d.HardwareIDs, id)
	}
	sort.Strings(d.HardwareIDs)
	if s, _ := filepath.Glob(filepath.Join(dir, "*.sys")); len(s) > 0 {
		d.SYS = s[0]
	}
	return d, nil
}

// utf16ToUTF8 decodes INFs saved as UTF-16 (as some are).
func utf16ToUTF8(b []byte) []byte {
	if len(b) < 2 || !(b[0] == 0xFF && b[1] == 0xFE) {
		return b
	}
	var out []byte
	for i := 2; i+1 < len(b); i += 2 {
		out = append(out, b[i])
	}
	return out
}
