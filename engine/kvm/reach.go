package kvm

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"regexp"

	"github.com/vmconv/terraform-provider-vmconv/engine/accel"
	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
)

// qemuConf is the system libvirtd's QEMU driver configuration.
var qemuConf = "/etc/libvirt/qemu.conf"

// localSystemURI reports whether uri is this host's system libvirtd, whose
// QEMU runs as libvirt's DAC user on this host's file system. A remote
// host's folders are not ours to stat, and a session libvirtd runs QEMU as
// the caller.
func localSystemURI(uri string) bool {
	u, err := url.Parse(uri)
	if err != nil || u.Host != "" || u.Path != "/system" {
		return false
	}
	return u.Scheme == "qemu" || u.Scheme == "qemu+unix"
}

var dynamicOwnershipLine = regexp.MustCompile(`(?m)^\s*dynamic_ownership\s*=\s*(\d+)`)

// dynamicOwnership reads qemu.conf's dynamic_ownership (default on): with
// it, libvirt chowns every image of a disk's chain to the QEMU user before
// QEMU starts.
func dynamicOwnership(conf string) bool {
	m := dynamicOwnershipLine.FindAllStringSubmatch(conf, -1)
	return len(m) == 0 || m[len(m)-1][1] != "0"
}

// qemuIdentity asks libvirt who it runs QEMU as, for domains of the type
// spec gives them. ok is false when libvirt applies no DAC label.
func (m *Manager) qemuIdentity(ctx context.Context, hv Hypervisor) (Identity, bool, error) {
	caps, err := hv.Capabilities()
	if err != nil {
		return Identity{}, false, fault.Wrap(fault.HypervisorFailed, m.URI(), err, "cannot read libvirt's capabilities, which name the user QEMU runs as")
	}
	ku, kg, kok, kerr := DACLabel(caps, "kvm")
	qu, qg, qok, qerr := DACLabel(caps, "qemu")
	if err := errors.Join(kerr, qerr); err != nil {
		return Identity{}, false, fault.Wrap(fault.HypervisorFailed, m.URI(), err, "cannot read the user QEMU runs as from libvirt's capabilities")
	}
	uid, gid, ok := qu, qg, qok
	switch {
	case kok && !qok:
		uid, gid, ok = ku, kg, true
	case kok && qok && (ku != qu || kg != qg):
		// The labels differ by domain type: the type is the one spec
		// will choose.
		if a, err := m.deps.Accel(ctx); err == nil && a.Mode == accel.KVM {
			uid, gid = ku, kg
		}
	}
	if !ok {
		return Identity{}, false, nil
	}
	return LookupIdentity(uid, gid), true, nil
}

// checkDomainAccess refuses, at plan time, a domain whose disks QEMU will
// not reach: libvirt starts QEMU as its DAC user (libvirt-qemu on Debian),
// which must be able to search every folder above each image of each
// disk's chain. Only the local system libvirtd is checked.
func (m *Manager) checkDomainAccess(ctx context.Context, req Request, hv Hypervisor) error {
	if !localSystemURI(m.URI()) {
		return nil
	}
	id, ok, err := m.qemuIdentity(ctx, hv)
	if err != nil || !ok {
		return err
	}
	// QEMU as root: libvirt may keep or drop its capabilities
	// (clear_emulator_capabilities), which decides whether modes apply at
	// all. Nothing to predict safely; leave it to libvirt.
	if id.UID == 0 {
		return nil
	}
	conf, _ := os.ReadFile(qemuConf)
	return checkReach(req, m.domainDir(req.Name), id, !dynamicOwnership(string(conf)), StatPerm)
}

// checkReach walks every path QEMU will open for req, as id.
//
// Folders: search permission on every ancestor, always. libvirt never
// changes a folder, and it checks, as the QEMU user, that each backing file
// is there before it starts the domain ("Cannot access backing file ...
// Permission denied").
//
// Files: with dynamic_ownership on (libvirt's default), libvirt chowns each
// image of the chain, backing images included, to the QEMU user when the
// domain starts, so a file's own mode does not matter and is not checked
// (a 0600 root-owned image works). With it off (readFiles), nothing hands
// the file over, so the QEMU user must be able to read it as it is.
//
// A disk that does not exist yet (a conversion in the same plan writes it)
// is checked through its folder, which exists at plan time; the domain's
// own folder, where its overlays go, through its nearest existing
// ancestor. Paths that cannot be stat'ed are left to the checks that
// report missing files.
func checkReach(req Request, domainDir string, id Identity, readFiles bool, stat func(string) (Perm, error)) error {
	type target struct {
		path, what, file string
		read, dir        bool
		domainOwned      bool
	}
	var ts []target
	for i, d := range req.Disks {
		src, err := filepath.Abs(d.Source)
		if err != nil {
			continue
		}
		if _, err := os.Stat(src); err != nil {
			dir := nearestExisting(filepath.Dir(src))
			ts = append(ts, target{path: dir, what: fmt.Sprintf("disk %d (%s, which does not exist yet), through its folder", i, src), dir: true, file: d.Source})
			continue
		}
		for _, p := range withRealPath(src) {
			ts = append(ts, target{path: p, what: fmt.Sprintf("disk %d (%s)", i, src), read: readFiles, file: d.Source})
		}
		for _, b := range BackingChain(src) {
			for _, p := range withRealPath(b) {
				ts = append(ts, target{path: p, what: fmt.Sprintf("the backing image %s of disk %d (%s)", b, i, src), read: readFiles, file: d.Source})
			}
		}
	}
	if dd, err := filepath.Abs(domainDir); err == nil {
		dir := nearestExisting(dd)
		ts = append(ts, target{path: dir, what: fmt.Sprintf("the domain's folder %s, where its overlays go", dd), dir: true, file: dd, domainOwned: true})
	}
	for _, t := range ts {
		b, err := Reach(t.path, id, t.read, t.dir, stat)
		if err != nil || b == nil {
			continue
		}
		return unreachable(id, t.file, t.what, t.domainOwned, b)
	}
	return nil
}

// withRealPath is p and, when a symbolic link is on its way, the path it
// resolves to: the kernel needs search permission along both.
func withRealPath(p string) []string {
	if r, err := filepath.EvalSymlinks(p); err == nil && r != p {
		return []string{p, r}
	}
	return []string{p}
}

func nearestExisting(p string) string {
	for {
		if _, err := os.Stat(p); err == nil || p == "/" || p == "." {
			return p
		}
		p = filepath.Dir(p)
	}
}

func unreachable(id Identity, file, what string, domainOwned bool, b *Blocked) error {
	kind, verb := "folder", "search"
	if b.Need == "read" {
		kind, verb = "file", "read"
	}
	bits := map[string]string{"search": "x", "read": "r"}[b.Need]
	class := b.Class(id)
	user := id.Name
	if user == "" {
		user = fmt.Sprint(id.UID)
	}
	fix := fmt.Sprintf("chmod %s+%s %s", class, bits, b.Path)
	if class == "o" && b.Need == "search" {
		fix += " (search only: files whose names QEMU knows can be opened, the folder cannot be listed)"
	}
	hint := fmt.Sprintf("Let the QEMU user through: %s, or for that user alone: setfacl -m u:%s:%s %s", fix, user, bits, b.Path)
	switch {
	case domainOwned:
		hint += "; or set the provider's domain_dir to a folder QEMU can reach."
	case b.Need == "read":
		hint += fmt.Sprintf(". libvirt's dynamic_ownership is off in %s, so libvirt does not hand image files to QEMU itself.", qemuConf)
	default:
		hint += "; or put the image in a folder QEMU can reach, such as /var/lib/libvirt/images."
	}
	hint += " vmconv does not change permissions itself."
	return fault.New(fault.DiskUnreachable, file, "libvirt runs QEMU as %s, which cannot reach %s: the %s %s (%s, owner %s) does not let it %s",
		user, what, kind, b.Path, modeString(b.Perm), b.Perm.Owner(), verb).
		WithFact("Blocked at", b.Path).
		WithFact("QEMU user", id.String()+", from libvirt's capabilities").
		WithHint("%s", hint)
}

func modeString(p Perm) string {
	s := (p.Mode & (fs.ModeDir | fs.ModePerm)).String()
	if p.ACL != nil {
		s += "+"
	}
	return s
}
