package vsphere

import (
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/engine/fetch"
	"github.com/vmconv/terraform-provider-vmconv/engine/vmdk"
)

// FetchOptions say which disk to copy and how.
type FetchOptions struct {
	Datacenter, VM string
	Disk           int
	// Snapshot takes a snapshot first and reads the disk as of it, so a
	// running VM is read consistently; the snapshot is removed afterwards,
	// also when the copy fails.
	Snapshot bool
	// Dir receives the files.
	Dir    string
	Logger fetch.Logger
}

// Fetched says what was copied.
type Fetched struct {
	// Head is the local copy of the disk's newest file.
	Head     string   `json:"head"`
	Files    []string `json:"files"`
	Snapshot string   `json:"snapshot,omitempty"`
	Removed  bool     `json:"snapshot_removed"`
	Reused   int      `json:"reused_files"`
	Relogins int      `json:"relogins"`
}

// afterSnapshot runs between taking the snapshot and reading the disks.
// Tests use it to change the VM's disks at that moment.
var afterSnapshot func(ctx context.Context)

// FetchDisk copies one disk of a VM, with its whole backing chain and
// extents, through the datastore's /folder HTTP interface: ranged and
// resumable, and a file already copied completely is reused when the
// server still has the same one.
func (c *Client) FetchDisk(ctx context.Context, o FetchOptions) (*Fetched, error) {
	res := &Fetched{}
	st, err := c.readVM(ctx, o.Datacenter, o.VM, snapshotPrefix(o.Snapshot), "the disk was copied", func(r vmRead) error {
		dc, info := r.dc, r.info
		if o.Disk < 0 || o.Disk >= len(info.Disks) {
			return fault.New(fault.InvalidRequest, o.VM, "the VM has %d disk(s); disk %d does not exist", len(info.Disks), o.Disk)
		}
		return c.copyDisk(ctx, dc, o.Disk, info.Disks[o.Disk], sink{dir: o.Dir, log: o.Logger}, res)
	})
	res.Snapshot, res.Removed = st.Snapshot, st.Removed
	if err != nil {
		return nil, err
	}
	res.Relogins = c.Relogins
	return res, nil
}

// FetchVMOptions say which VM to copy and how.
type FetchVMOptions struct {
	Datacenter, VM string
	// Snapshot takes one snapshot of the VM and reads every disk as of
	// it, so the disks agree with each other; it is removed afterwards,
	// also when a copy fails.
	Snapshot bool
	// Dir receives the files: disk N (in VM.Disks order) under
	// Dir/disk<N>/, so that two disks whose files have the same name in
	// different datastore folders cannot overwrite each other.
	Dir    string
	Logger fetch.Logger
}

// FetchedVM says what was copied of a whole VM.
type FetchedVM struct {
	// VM is the configuration the disks were read from: the snapshot's
	// when one was taken. Disks[i] is the copy of VM.Disks[i].
	VM       *VM       `json:"vm"`
	Disks    []Fetched `json:"disks"`
	Snapshot string    `json:"snapshot,omitempty"`
	Removed  bool      `json:"snapshot_removed"`
	Reused   int       `json:"reused_files"`
	Relogins int       `json:"relogins"`
}

// DiskDir is the folder of Dir that FetchVM copies disk n into.
func DiskDir(dir string, n int) string { return filepath.Join(dir, fmt.Sprintf("disk%d", n)) }

// FetchVM copies every virtual disk of a VM, each with its backing chain,
// as FetchDisk copies one; with Snapshot, all of them from one snapshot.
func (c *Client) FetchVM(ctx context.Context, o FetchVMOptions) (*FetchedVM, error) {
	res := &FetchedVM{}
	st, err := c.readVM(ctx, o.Datacenter, o.VM, snapshotPrefix(o.Snapshot), "the VM's disks were copied", func(r vmRead) error {
		dc, info := r.dc, r.info
		if len(info.Disks) == 0 {
			return fault.New(fault.InvalidRequest, o.VM, "the VM has no virtual disk to copy").
				WithHint("Check vm: it names a VM without disks.")
		}
		res.VM = info
		for i := range info.Disks {
			dir := DiskDir(o.Dir, i)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return fault.Wrap(fault.OutputNotWritable, dir, err, "cannot create the download folder")
			}
			var d Fetched
			if err := c.copyDisk(ctx, dc, i, info.Disks[i], sink{dir: dir, log: o.Logger}, &d); err != nil {
				return err
			}
			res.Reused += d.Reused
			res.Disks = append(res.Disks, d)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	res.Snapshot, res.Removed = st.Snapshot, st.Removed
	for i := range res.Disks {
		res.Disks[i].Snapshot, res.Disks[i].Removed = st.Snapshot, st.Removed
		res.Disks[i].Relogins = c.Relogins
	}
	res.Relogins = c.Relogins
	return res, nil
}

// snapState is what became of the snapshot taken for a read.
type snapState struct {
	Snapshot string
	Removed  bool
}

// vmRead is what readVM hands its reader.
type vmRead struct {
	dc   *object.Datacenter
	vm   *object.VirtualMachine
	info *VM
	// snap is the snapshot taken for the read, nil without one.
	snap *types.ManagedObjectReference
}

// Snapshot name prefixes: a cold read's, and a warm migration's sync's,
// which the next sync removes when a killed run left one.
const (
	coldSnapshot = "vmconv-"
	warmSnapshot = "vmconv-warm-"
)

// readVM finds a VM and runs read with its configuration: with a snapshot
// prefix, the configuration of one snapshot taken for the read and
// removed after it whatever happened; with "", the VM's current one. done
// says what was copied, for the message when only the removal failed.
func (c *Client) readVM(ctx context.Context, datacenter, name string, snapshot string, done string, read func(vmRead) error) (st snapState, err error) {
	dc, vm, err := c.findVM(ctx, datacenter, name)
	if err != nil {
		return st, err
	}
	var cfg *types.VirtualMachineConfigInfo
	var snapRef *types.ManagedObjectReference
	if snapshot != "" {
		snapName := fmt.Sprintf("%s%d", snapshot, time.Now().UnixNano())
		var snap types.ManagedObjectReference
		if err := c.soap(ctx, func() error {
			t, err := vm.CreateSnapshot(ctx, snapName, "vmconv: consistent read for migration; removed when the copy ends", false, false)
			if err != nil {
				return err
			}
			r, err := t.WaitForResult(ctx)
			if err != nil {
				return err
			}
			snap = r.Result.(types.ManagedObjectReference)
			return nil
		}); err != nil {
			return st, fault.Wrap(fault.FetchFailed, name, err, "cannot take a snapshot of the VM").
				WithHint("Check the user's Snapshot privileges, or set snapshot = \"none\" for a powered-off VM.")
		}
		st.Snapshot = snapName
		defer func() {
			// Remove it whatever happened, with a context of its own: an
			// interrupted apply must not leave a snapshot behind.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
			defer cancel()
			rerr := c.removeSnapshot(rctx, snap)
			st.Removed = rerr == nil
			if rerr != nil && err == nil {
				err = fault.Wrap(fault.FetchFailed, name, rerr, "%s but the snapshot %s could not be removed", done, snapName).
					WithHint("Remove it in vSphere (Snapshots > Manage), then run terraform apply again.")
			}
		}()
		var ms mo.VirtualMachineSnapshot
		if err := c.soap(ctx, func() error {
			return object.NewCommon(c.vc, snap).Properties(ctx, snap, []string{"config"}, &ms)
		}); err != nil {
			return st, fault.Wrap(fault.FetchFailed, name, err, "cannot read the snapshot's configuration")
		}
		cfg, snapRef = &ms.Config, &snap
	} else {
		var m mo.VirtualMachine
		if err := c.soap(ctx, func() error { return vm.Properties(ctx, vm.Reference(), []string{"config"}, &m) }); err != nil || m.Config == nil {
			return st, fault.Wrap(fault.FetchFailed, name, err, "cannot read the VM's configuration")
		}
		cfg = m.Config
	}
	if afterSnapshot != nil {
		afterSnapshot(ctx)
	}
	return st, read(vmRead{dc: dc, vm: vm, info: describe(cfg, nil), snap: snapRef})
}

// outsideFolder tells whether an extent's file name leaves its
// descriptor's folder.
func outsideFolder(name string) bool { return strings.Contains(name, "/") || name == ".." }

func snapshotPrefix(take bool) string {
	if take {
		return coldSnapshot
	}
	return ""
}

// sink is where one disk's files go.
type sink struct {
	dir string
	log fetch.Logger
}

// copyDisk copies disk, number n in VM.Disks order, with its chain into
// to.dir, recording the files in res.
func (c *Client) copyDisk(ctx context.Context, dc *object.Datacenter, n int, disk Disk, to sink, res *Fetched) error {
	if disk.Backing == "rdm" {
		return fault.New(fault.UnsupportedFormat, disk.Chain[0], "disk %d (%s) is a raw device mapping: there is no image to copy", n, disk.Label)
	}
	for i, dsPath := range disk.Chain {
		local, err := c.fetchVMDK(ctx, dc, dsPath, to, res)
		if err != nil {
			return err
		}
		if i == 0 {
			res.Head = local
		}
	}
	return nil
}

// fetchVMDK copies a descriptor and the extents it names.
func (c *Client) fetchVMDK(ctx context.Context, dc *object.Datacenter, dsPath string, to sink, res *Fetched) (string, error) {
	var p object.DatastorePath
	if !p.FromString(dsPath) {
		return "", fault.New(fault.CorruptDescriptor, dsPath, "not a datastore path")
	}
	local, err := c.fetchFile(ctx, dc, p, to, res)
	if err != nil {
		return "", err
	}
	b, err := readHead(local, 64<<10)
	if err != nil {
		return "", err
	}
	if !vmdk.LooksLikeDescriptor(b) {
		return local, nil // a sparse file with its descriptor inside
	}
	d, err := vmdk.ParseDescriptor(b)
	if err != nil {
		return "", fault.Wrap(fault.CorruptDescriptor, dsPath, err, "the descriptor on the datastore is not valid")
	}
	for _, x := range d.Extents {
		if x.Filename == "" {
			continue
		}
		if outsideFolder(x.Filename) {
			return "", fault.New(fault.PathOutsideSource, dsPath, "extent %q is outside the disk's folder", x.Filename)
		}
		ext := object.DatastorePath{Datastore: p.Datastore, Path: path.Join(path.Dir(p.Path), x.Filename)}
		if _, err := c.fetchFile(ctx, dc, ext, to, res); err != nil {
			return "", err
		}
	}
	return local, nil
}

func (c *Client) fetchFile(ctx context.Context, dc *object.Datacenter, p object.DatastorePath, to sink, res *Fetched) (string, error) {
	ds, err := c.datastore(ctx, dc, p.Datastore)
	if err != nil {
		return "", err
	}
	dest := filepath.Join(to.dir, path.Base(p.Path))
	r, err := fetch.HTTP(ctx, ds.NewURL(p.Path).String(), dest, fetch.HTTPOptions{
		HTTPClient: &c.vc.Client.Client, Logger: to.log, Revalidate: true,
	})
	if err != nil {
		return "", err
	}
	if r.Reused {
		res.Reused++
	}
	res.Files = append(res.Files, dest)
	return dest, nil
}

// soap runs a SOAP exchange, logging in again once if the session ended
// (expired, or terminated by an administrator) while a long copy ran.
func (c *Client) soap(ctx context.Context, call func() error) error {
	err := call()
	if err == nil || !isNotAuthenticated(err) {
		return err
	}
	if lerr := c.sm.Login(ctx, c.login); lerr != nil {
		return fault.New(fault.AuthFailed, c.host, "the vSphere session ended and logging in again failed")
	}
	c.Relogins++
	return call()
}

func isNotAuthenticated(err error) bool {
	s := err.Error()
	return strings.Contains(s, "NotAuthenticated") || strings.Contains(s, "not authenticated") || strings.Contains(s, "session is not authenticated")
}

func readHead(p string, n int) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, n)
	k, _ := f.Read(b)
	return b[:k], nil
}

// SetAfterSnapshotHook installs a function run between taking the snapshot
// and reading the disks, for tests that write to the VM's disks at that
// moment to prove the read comes from the snapshot. Not for production use.
func SetAfterSnapshotHook(f func(ctx context.Context)) { afterSnapshot = f }
