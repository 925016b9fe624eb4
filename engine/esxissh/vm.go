package esxissh

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/engine/vmx"
)

// A whole VM on the host is its .vmx and every disk it names. The rules are
// those of a local VM folder (engine/source/vmx.go): the .vmx is a small
// regular file read strictly, and every file of every disk, snapshot
// parents and extents included, lies in the .vmx's folder once the host
// has resolved its symlinks. A .vmx is input vmconv did not write; it must
// not make vmconv copy another VM's disk or a host file.

// vmFolder is a .vmx read and vetted on the host.
type vmFolder struct {
	vm    *vmx.VM
	heads []string // each disk's head, resolved on the host, in vm.Disks' order
	vmx   FileInfo
	dir   string // the .vmx's folder, resolved on the host
}

// ReadVMX reads the .vmx at the absolute path remoteVMX on the host and
// returns the VM and, in vm.Disks' order, the absolute path on the host of
// each disk's head (its newest file), symlinks resolved. A disk named
// outside the .vmx's folder (absolute, "..", or a symlink leaving it) is
// refused with fault.PathOutsideSource, a missing one with
// fault.SourceMissing; a VM without hard disks with fault.InvalidRequest.
func (c *Client) ReadVMX(ctx context.Context, remoteVMX string) (*vmx.VM, []string, error) {
	f, err := c.readVMX(ctx, remoteVMX)
	if err != nil {
		return nil, nil, err
	}
	return f.vm, f.heads, nil
}

// StatVM describes a whole VM without copying it: for plans. files[i] is
// the chain of vm.Disks[i] as Stat gives it (head first, then its extents
// and parents); files[len(vm.Disks)], the last, holds only the .vmx's own
// FileInfo. Flattened in order, files equals FetchVM's Remote while nothing
// changes on the host, so a fingerprint of one matches the other.
func (c *Client) StatVM(ctx context.Context, remoteVMX string) (*vmx.VM, [][]FileInfo, error) {
	f, files, err := c.statVM(ctx, remoteVMX)
	if err != nil {
		return nil, nil, err
	}
	return f.vm, files, nil
}

func (c *Client) statVM(ctx context.Context, remoteVMX string) (*vmFolder, [][]FileInfo, error) {
	f, err := c.readVMX(ctx, remoteVMX)
	if err != nil {
		return nil, nil, err
	}
	files := make([][]FileInfo, 0, len(f.heads)+1)
	for _, h := range f.heads {
		if err := ctx.Err(); err != nil {
			return nil, nil, fault.Wrap(fault.Cancelled, remoteVMX, err, "reading the VM on the host was interrupted")
		}
		st, err := c.stat(h, c.inFolder(remoteVMX, f.dir))
		if err != nil {
			return nil, nil, c.onHost(err)
		}
		files = append(files, st)
	}
	return f, append(files, []FileInfo{f.vmx}), nil
}

// FetchedVM says what FetchVM copied.
type FetchedVM struct {
	VM *vmx.VM `json:"vm"`
	// Disks are the copies of vm.Disks, in its order: Disks[i].Head is the
	// local head of disk i, in its own folder disk<i> under dir.
	Disks []*Fetched `json:"disks"`
	// Remote is every file as the host reported it: each disk's chain in
	// the VM's order, then the .vmx (as StatVM orders them).
	Remote []FileInfo `json:"remote"`
}

// FetchVM copies every disk of the VM at remoteVMX, each with its chain,
// into dir/disk0, dir/disk1, ... (one folder per disk, so that disks with
// equal file names in different folders cannot overwrite each other). The
// whole VM is read and vetted before anything is written: a refused VM
// leaves dir as it was. Copies resume and are reused as Fetch's are.
func (c *Client) FetchVM(ctx context.Context, remoteVMX, dir string) (*FetchedVM, error) {
	f, _, err := c.statVM(ctx, remoteVMX)
	if err != nil {
		return nil, err
	}
	res := &FetchedVM{VM: f.vm}
	for i, h := range f.heads {
		sub := filepath.Join(dir, fmt.Sprintf("disk%d", i))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			return nil, fault.Wrap(fault.OutputNotWritable, sub, err, "cannot create the copy folder")
		}
		r, err := c.fetch(ctx, h, sub, c.inFolder(remoteVMX, f.dir))
		if err != nil {
			return nil, c.onHost(err)
		}
		res.Disks = append(res.Disks, r)
		res.Remote = append(res.Remote, r.Remote...)
	}
	res.Remote = append(res.Remote, f.vmx)
	return res, nil
}

func (c *Client) readVMX(ctx context.Context, remoteVMX string) (*vmFolder, error) {
	if !path.IsAbs(remoteVMX) {
		return nil, fault.New(fault.InvalidRequest, remoteVMX, "the .vmx path must be \"[datastore] folder/vm.vmx\" or absolute")
	}
	remoteVMX = path.Clean(remoteVMX)
	if err := ctx.Err(); err != nil {
		return nil, fault.Wrap(fault.Cancelled, remoteVMX, err, "reading the VM on the host was interrupted")
	}
	vm, fi, err := c.parseVMX(remoteVMX)
	if err != nil {
		return nil, c.onHost(err)
	}
	if len(vm.Disks) == 0 {
		return nil, c.onHost(fault.New(fault.InvalidRequest, remoteVMX, "the VM has no hard disk (the .vmx names none that is present)").
			WithHint("Check that this is the VM's .vmx; CD-ROMs and devices with present = \"FALSE\" are left out."))
	}
	dir, err := c.sftp.RealPath(path.Dir(remoteVMX))
	if err != nil {
		return nil, c.onHost(fault.Wrap(fault.SourceUnreadable, remoteVMX, err, "cannot resolve the VM's folder on the host"))
	}
	f := &vmFolder{vm: vm, vmx: FileInfo{Path: remoteVMX, Size: fi.Size(), ModTime: fi.ModTime().UTC()}, dir: dir}
	for _, d := range vm.Disks {
		if err := ctx.Err(); err != nil {
			return nil, fault.Wrap(fault.Cancelled, remoteVMX, err, "reading the VM on the host was interrupted")
		}
		head, err := c.diskInFolder(remoteVMX, dir, d)
		if err != nil {
			return nil, c.onHost(err)
		}
		f.heads = append(f.heads, head)
	}
	return f, nil
}

// parseVMX reads and parses the .vmx, refusing anything that is not a
// small regular file before opening it: opening a FIFO would block the
// host's SFTP server, a device would never end.
func (c *Client) parseVMX(p string) (*vmx.VM, os.FileInfo, error) {
	fi, err := c.sftp.Stat(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil, fault.Wrap(fault.SourceMissing, p, err, "the .vmx does not exist on the host").WithHint("Check the .vmx's path on the host.")
		}
		return nil, nil, fault.Wrap(fault.SourceUnreadable, p, err, "cannot read the .vmx on the host")
	}
	if !fi.Mode().IsRegular() {
		return nil, nil, fault.New(fault.SourceUnreadable, p, "the .vmx on the host is not a regular file (%s)", fi.Mode().Type()).
			WithHint("Point the source at the VM's .vmx file.")
	}
	if fi.Size() > vmx.MaxSize {
		return nil, nil, vmx.TooBig(p, fi.Size())
	}
	r, err := c.sftp.Open(p)
	if err != nil {
		return nil, nil, fault.Wrap(fault.SourceUnreadable, p, err, "cannot open the .vmx on the host")
	}
	defer r.Close()
	// The file may have grown since it was stat'ed: read one byte past the
	// bound to see it.
	b, err := io.ReadAll(io.LimitReader(r, vmx.MaxSize+1))
	if err != nil {
		return nil, nil, fault.Wrap(fault.SourceUnreadable, p, err, "cannot read the .vmx on the host")
	}
	if len(b) > vmx.MaxSize {
		return nil, nil, vmx.TooBig(p, int64(len(b)))
	}
	vm, err := vmx.Decode(b, p)
	if err != nil {
		return nil, nil, err
	}
	return vm, fi, nil
}

// diskInFolder resolves a disk's fileName as VMware does (relative to the
// .vmx's folder), lets the host resolve its symlinks, and refuses a disk
// that then lies outside dir, the resolved folder.
func (c *Client) diskInFolder(vmxPath, dir string, d vmx.Disk) (string, error) {
	name := d.FileName
	where := fmt.Sprintf("%s.fileName (line %d)", d.Device, d.Line)
	p := name
	if !path.IsAbs(p) {
		p = path.Join(path.Dir(vmxPath), p)
	}
	missing := func(err error) error {
		return fault.Wrap(fault.SourceMissing, vmxPath, err, "disk %s of the VM is missing on the host: %s names %q", d.Device, where, name).
			WithHint("Check that the VM's folder holds every disk and snapshot file, or remove the disk from the .vmx.")
	}
	real, err := c.sftp.RealPath(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", missing(err)
		}
		return "", fault.Wrap(fault.SourceUnreadable, vmxPath, err, "cannot resolve disk %s on the host (%s names %q)", d.Device, where, name)
	}
	if !within(dir, real) {
		return "", fault.New(fault.PathOutsideSource, vmxPath, "disk %s lies outside the VM's folder: %s names %q, which is %s on the host", d.Device, where, name, real).
			WithHint("vmconv reads only files in the VM's folder. Move the disk into the folder and name it relatively in the .vmx.")
	}
	// The host's realpath need not fail for a missing last component.
	if _, err := c.sftp.Stat(real); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", missing(err)
		}
		return "", fault.Wrap(fault.SourceUnreadable, vmxPath, err, "cannot read disk %s on the host (%s names %q)", d.Device, where, name)
	}
	return real, nil
}

// inFolder vets each file of a disk's chain: a snapshot parent or extent
// named plainly may still be a symlink out of the folder.
func (c *Client) inFolder(vmxPath, dir string) check {
	return func(remote string, _ os.FileInfo) error {
		real, err := c.sftp.RealPath(remote)
		if err != nil {
			return fault.Wrap(fault.SourceUnreadable, remote, err, "cannot resolve the file on the host")
		}
		if !within(dir, real) {
			return fault.New(fault.PathOutsideSource, remote, "the disk file is %s on the host, outside the VM's folder %s", real, dir).
				WithHint("vmconv reads only files in the VM's folder (%s). Move the file into the folder.", vmxPath)
		}
		return nil
	}
}

// within says whether p, a resolved absolute path, is dir or lies under it.
func within(dir, p string) bool {
	dir, p = path.Clean(dir), path.Clean(p)
	return p == dir || strings.HasPrefix(p, strings.TrimSuffix(dir, "/")+"/")
}

// onHost adds the host to a fault, so that the remote path is not taken
// for a local one.
func (c *Client) onHost(err error) error {
	if fe, ok := fault.As(err); ok {
		fe.WithFact("Host", c.host)
	}
	return err
}
