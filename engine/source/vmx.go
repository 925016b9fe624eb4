package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/engine/guest"
	"github.com/vmconv/terraform-provider-vmconv/engine/vmx"
	"golang.org/x/sys/unix"
)

// Disk is one disk of a whole-VM source, in the order the VM attaches it.
type Disk struct {
	// Head is the disk's newest file; its chain is resolved from it.
	Head string `json:"head"`
	// Slot is where the VM attached it (scsi0:1), which is how the guest
	// named it.
	Slot guest.DiskSlot `json:"slot"`
	// Device is the slot as the source names it, such as scsi0:1.
	Device string `json:"device,omitempty"`
	// Fingerprint identifies the disk when its source has its own (a
	// fetched disk); empty means its chain's files are fingerprinted.
	Fingerprint string `json:"-"`
	// Remote is set, and Head empty, for a disk not fetched yet: the plan
	// is made from what its remote end reports.
	Remote *Remote `json:"-"`
	// Shown names the disk for a plan, without secrets, when Head is not
	// what the user knows it by.
	Shown string `json:"-"`
	// Kind is a listed disk's own kind (source.disks), which decides how
	// its chain is checked.
	Kind string `json:"-"`
	// Format is set when the source knows Head's format rather than
	// leaving it to be detected: a warm migration's raw staging images.
	Format string `json:"-"`
}

// Hardware is the VM's shape as its source describes it.
type Hardware struct {
	VCPUs     int    `json:"vcpus"`
	MemoryMiB int    `json:"memory_mib"`
	Firmware  string `json:"firmware"`
	GuestOS   string `json:"guest_os,omitempty"`
	NICs      []NIC  `json:"nics"`
	// Skipped lists the devices that were left out (CD-ROMs, absent
	// disks), so the plan says so.
	Skipped []string `json:"skipped,omitempty"`
}

// NIC is a network adapter of the VM.
type NIC struct {
	MAC     string `json:"mac"`
	Model   string `json:"model,omitempty"`
	Network string `json:"network,omitempty"`
}

// vmxSource is a VMware VM folder: its .vmx and every disk it names, each
// the head of a chain resolved as a path source's is.
type vmxSource struct{ path string }

func (vmxSource) Kind() string                        { return "vmx" }
func (s vmxSource) Describe(*Remote) (string, string) { return s.path, "" }
func (s vmxSource) Protected() []string               { return []string{s.path} }
func (vmxSource) Relabel(err error) error             { return err }

func (s vmxSource) Locate(context.Context, bool) (*Local, *Remote, error) {
	vm, err := readVMX(s.path)
	if err != nil {
		return nil, nil, err
	}
	if len(vm.Disks) == 0 {
		return nil, nil, fault.New(fault.InvalidRequest, s.path, "the VM has no hard disk (the .vmx names none that is present)").
			WithHint("Check that this is the VM's .vmx; CD-ROMs and devices with present = \"FALSE\" are left out.")
	}
	dir, err := filepath.EvalSymlinks(filepath.Dir(s.path))
	if err != nil {
		return nil, nil, fault.Wrap(fault.SourceUnreadable, s.path, err, "cannot resolve the VM's folder")
	}
	l := &Local{Hardware: vmxHardware(vm)}
	for _, d := range vm.Disks {
		head, err := diskInFolder(s.path, dir, d)
		if err != nil {
			return nil, nil, err
		}
		l.Disks = append(l.Disks, Disk{Head: head, Device: d.Device, Slot: guest.DiskSlot{Bus: d.Bus, Controller: d.Controller, Unit: d.Unit}})
	}
	if len(l.Disks) == 1 {
		l.Head = l.Disks[0].Head
	}
	l.Note = fmt.Sprintf("%d disk(s) of the VM", len(l.Disks))
	return l, nil, nil
}

// vmxHardware is the VM's shape as its .vmx describes it.
func vmxHardware(vm *vmx.VM) *Hardware {
	h := &Hardware{VCPUs: vm.CPUs, MemoryMiB: vm.MemoryMiB, Firmware: vm.Firmware, GuestOS: vm.GuestOS, Skipped: vm.Skipped}
	for _, n := range vm.NICs {
		h.NICs = append(h.NICs, NIC{MAC: n.MAC, Model: n.Model, Network: n.Network})
	}
	return h
}

// readVMX reads and parses a .vmx, refusing anything that is not a small
// regular file before reading it (a FIFO would block, a device never end).
func readVMX(path string) (*vmx.VM, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fault.Wrap(fault.SourceMissing, path, err, "the .vmx does not exist").WithHint("Check source.vmx.")
		}
		return nil, fault.Wrap(fault.SourceUnreadable, path, err, "cannot open the .vmx")
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return nil, fault.New(fault.SourceUnreadable, path, "the .vmx is not a regular file").WithHint("Point source.vmx at the VM's .vmx file.")
	}
	if fi.Size() > vmx.MaxSize {
		return nil, vmx.TooBig(path, fi.Size())
	}
	b, err := io.ReadAll(io.LimitReader(f, vmx.MaxSize+1))
	if err != nil {
		return nil, fault.Wrap(fault.SourceUnreadable, path, err, "cannot read the .vmx")
	}
	return vmx.Decode(b, path)
}

// diskInFolder resolves a disk's fileName the way VMware does (relative to
// the .vmx's folder) and refuses one that leaves the folder, by name or by
// symlink: a .vmx is not allowed to make vmconv read another VM's disk or
// a host file.
func diskInFolder(vmxPath, dir string, d vmx.Disk) (string, error) {
	name := d.FileName
	where := fmt.Sprintf("%s.fileName (line %d)", d.Device, d.Line)
	p := name
	if !filepath.IsAbs(p) {
		p = filepath.Join(filepath.Dir(vmxPath), p)
	}
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", fault.Wrap(fault.SourceMissing, vmxPath, err, "disk %s of the VM is missing: %s names %q", d.Device, where, name).
				WithHint("Copy the VM's whole folder, every disk and snapshot file included, or remove the disk from the .vmx.")
		}
		return "", fault.Wrap(fault.SourceUnreadable, vmxPath, err, "cannot resolve disk %s (%s names %q)", d.Device, where, name)
	}
	if rel, err := filepath.Rel(dir, real); err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return "", fault.New(fault.PathOutsideSource, vmxPath, "disk %s lies outside the VM's folder: %s names %q, which is %s", d.Device, where, name, real).
			WithHint("vmconv reads only files in the VM's folder. Copy the disk into the folder and name it relatively in the .vmx.")
	}
	return real, nil
}
