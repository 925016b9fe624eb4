// Package virtio finds the VirtIO drivers a Windows guest needs in a
// virtio-win source, the ISO itself or the folder it was unpacked to: one
// folder per driver, then per Windows version, then per architecture,
// holding the INF, SYS and CAT files, and the guest agent's installers in
// guest-agent/.
package virtio

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/engine/iso9660"
)

// Driver is one driver for one Windows version and architecture.
type Driver struct {
	Name    string `json:"name"`    // viostor
	Service string `json:"service"` // the service the INF installs
	OSDir   string `json:"os_dir"`  // 2k19
	Arch    string `json:"arch"`    // amd64
	Version string `json:"version"` // from DriverVer
	Date    string `json:"date"`
	// Dir, INF and SYS are paths in the Source.
	Dir string `json:"dir"`
	INF string `json:"inf"`
	SYS string `json:"sys,omitempty"`
	// HardwareIDs are the PCI IDs the INF binds, such as
	// PCI\VEN_1AF4&DEV_1001&SUBSYS_00021AF4&REV_00.
	HardwareIDs []string `json:"hardware_ids"`
}

// Boot-critical storage drivers, and the ones staged for Plug and Play at
// the first logon.
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

// Source is a virtio-win driver source: the ISO itself or the folder it was
// unpacked to. Paths in it are slash-separated, relative to its root.
type Source struct {
	Path string // as the user gave it
	Kind string // "iso" or "folder"
	FS   fs.FS
	im   *iso9660.Image
}

// Open opens the virtio-win ISO or folder at p.
func Open(p string) (*Source, error) {
	if p == "" {
		return nil, fault.New(fault.DriversMissing, "", "the guest is Windows and no VirtIO driver source is set").
			WithHint("Windows needs a VirtIO storage driver installed before its first KVM boot, or it stops with INACCESSIBLE_BOOT_DEVICE. " +
				"Download virtio-win.iso (https://fedorapeople.org/groups/virt/virtio-win/) and set virtio_win = \"/path/to/virtio-win.iso\" in the block fixes { windows { ... } } " +
				"(the ISO, or the folder it was unpacked to).")
	}
	fi, err := os.Stat(p)
	switch {
	case err != nil:
		return nil, fault.Wrap(fault.DriversMissing, p, err, "the VirtIO driver source cannot be read").
			WithHint("Point fixes.windows.virtio_win at virtio-win.iso or the folder it was unpacked to.")
	case fi.IsDir():
		return &Source{Path: p, Kind: "folder", FS: os.DirFS(p)}, nil
	case fi.Mode().IsRegular() && iso9660.Is(p):
		im, err := iso9660.Open(p)
		if err != nil {
			return nil, fault.Wrap(fault.DriversMissing, p, err, "the virtio-win ISO cannot be read").
				WithHint("Download virtio-win.iso again (its sha256 is published beside it), or unpack it with bsdtar and point virtio_win at the folder.")
		}
		return &Source{Path: p, Kind: "iso", FS: im, im: im}, nil
	}
	return nil, fault.New(fault.DriversMissing, p, "the VirtIO driver source is neither a folder nor an ISO 9660 image").
		WithHint("Point fixes.windows.virtio_win at virtio-win.iso or the folder it was unpacked to (the folder that holds viostor, vioscsi, NetKVM...).")
}

// Identity changes when the contents of the source at p do: the size and
// modification time of the ISO, or of every file in the folder. It is ""
// for no source.
func Identity(p string) string {
	if p == "" {
		return ""
	}
	fi, err := os.Stat(p)
	if err != nil {
		return "missing"
	}
	if !fi.IsDir() {
		return fmt.Sprintf("file %d %d", fi.Size(), fi.ModTime().UnixNano())
	}
	h := sha256.New()
	filepath.WalkDir(p, func(q string, d fs.DirEntry, err error) error {
		if err != nil {
			fmt.Fprintf(h, "%s error\n", q)
			return nil
		}
		if i, err := d.Info(); err == nil {
			fmt.Fprintf(h, "%s %d %d\n", q, i.Size(), i.ModTime().UnixNano())
		}
		return nil
	})
	return "folder " + hex.EncodeToString(h.Sum(nil))
}

// Close releases the ISO, if the source is one.
func (s *Source) Close() error {
	if s.im != nil {
		return s.im.Close()
	}
	return nil
}

// ReadFile reads a file of the source.
func (s *Source) ReadFile(name string) ([]byte, error) { return fs.ReadFile(s.FS, name) }

// ReadDir reads the regular files of a folder of the source.
func (s *Source) ReadDir(dir string) (map[string][]byte, error) {
	es, err := fs.ReadDir(s.FS, dir)
	if err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	for _, e := range es {
		if e.Type().IsRegular() {
			b, err := fs.ReadFile(s.FS, path.Join(dir, e.Name()))
			if err != nil {
				return nil, err
			}
			out[e.Name()] = b
		}
	}
	return out, nil
}

// Find locates each named driver for the guest in the source.
func Find(src *Source, names []string, osDirs []string, arch string) ([]Driver, error) {
	root := src.Path
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
			dir := path.Join(n, od, ad)
			if d, err := load(src.FS, n, od, ad, dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, err
			} else if err == nil {
				found = d
				break
			}
			if others, _ := fs.Glob(src.FS, path.Join(n, od, "*")); len(others) > 0 {
				for _, o := range others {
					seen = append(seen, od+"/"+path.Base(o))
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

// Agent is the QEMU guest agent's installer in a virtio-win source.
type Agent struct {
	File   string `json:"file"` // guest-agent/qemu-ga-x86_64.msi
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// FindAgent locates the guest agent installer for an architecture. Older
// and trimmed trees lack it; that is not an error, the guest boots without
// it.
func FindAgent(src *Source, arch string) (*Agent, []byte, bool) {
	name := map[string]string{"amd64": "qemu-ga-x86_64.msi", "x86": "qemu-ga-i386.msi"}[ArchDir(arch)]
	if name == "" {
		return nil, nil, false
	}
	p := path.Join("guest-agent", name)
	b, err := src.ReadFile(p)
	if err != nil {
		return nil, nil, false
	}
	sum := sha256.Sum256(b)
	return &Agent{File: p, Size: int64(len(b)), SHA256: hex.EncodeToString(sum[:])}, b, true
}

var (
	driverVer = regexp.MustCompile(`(?i)^\s*DriverVer\s*=\s*([0-9/]+)\s*,\s*([0-9.]+)`)
	pciID     = regexp.MustCompile(`(?i)PCI\\VEN_[0-9A-F]{4}&DEV_[0-9A-F]{4}(&SUBSYS_[0-9A-F]{8})?(&REV_[0-9A-F]{2})?`)
	addSvc    = regexp.MustCompile(`(?i)^\s*AddService\s*=\s*([A-Za-z0-9_]+)`)
)

func load(fsys fs.FS, name, osDir, arch, dir string) (*Driver, error) {
	es, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fs.ErrNotExist
	}
	var infs, syss []string
	for _, e := range es {
		switch strings.ToLower(path.Ext(e.Name())) {
		case ".inf":
			infs = append(infs, path.Join(dir, e.Name()))
		case ".sys":
			syss = append(syss, path.Join(dir, e.Name()))
		}
	}
	if len(infs) == 0 {
		return nil, fs.ErrNotExist
	}
	sort.Strings(infs)
	sort.Strings(syss)
	b, err := fs.ReadFile(fsys, infs[0])
	if err != nil {
		return nil, fault.Wrap(fault.DriversMissing, infs[0], err, "cannot read the %s INF", name)
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
	if len(syss) > 0 {
		d.SYS = syss[0]
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
