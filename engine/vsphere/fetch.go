package vsphere

import (
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25/methods"
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

// afterSnapshot runs between taking the snapshot and reading the disk.
// Tests use it to write to the VM's disk at that moment.
var afterSnapshot func(ctx context.Context)

// FetchDisk copies one disk of a VM, with its whole backing chain and
// extents, through the datastore's /folder HTTP interface: ranged and
// resumable, and a file already copied completely is reused when the
// server still has the same one.
func (c *Client) FetchDisk(ctx context.Context, o FetchOptions) (_ *Fetched, err error) {
	var vm *object.VirtualMachine
	var dc *object.Datacenter
	if err := c.soap(ctx, func() error {
		f := find.NewFinder(c.vc, true)
		var err error
		if dc, err = f.DatacenterOrDefault(ctx, o.Datacenter); err != nil {
			return err
		}
		f.SetDatacenter(dc)
		vm, err = f.VirtualMachine(ctx, o.VM)
		return err
	}); err != nil {
		return nil, fault.New(fault.RemoteNotFound, o.VM, "vSphere has no VM %q in datacenter %q", o.VM, o.Datacenter).WithHint("Check datacenter and vm.")
	}
	res := &Fetched{}
	var cfg *types.VirtualMachineConfigInfo
	if o.Snapshot {
		name := fmt.Sprintf("vmconv-%d", time.Now().UnixNano())
		var snap types.ManagedObjectReference
		if err := c.soap(ctx, func() error {
			t, err := vm.CreateSnapshot(ctx, name, "vmconv: consistent read for migration; removed when the copy ends", false, false)
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
			return nil, fault.Wrap(fault.FetchFailed, o.VM, err, "cannot take a snapshot of the VM").
				WithHint("Check the user's Snapshot privileges, or set snapshot = \"none\" for a powered-off VM.")
		}
		res.Snapshot = name
		defer func() {
			// Remove it whatever happened, with a context of its own: an
			// interrupted apply must not leave a snapshot behind.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
			defer cancel()
			rerr := c.soap(rctx, func() error {
				consolidate := true
				t, err := methods.RemoveSnapshot_Task(rctx, c.vc, &types.RemoveSnapshot_Task{This: snap, RemoveChildren: false, Consolidate: &consolidate})
				if err != nil {
					return err
				}
				return object.NewTask(c.vc, t.Returnval).Wait(rctx)
			})
			res.Removed = rerr == nil
			if rerr != nil && err == nil {
				err = fault.Wrap(fault.FetchFailed, o.VM, rerr, "the disk was copied but the snapshot %s could not be removed", name).
					WithHint("Remove it in vSphere (Snapshots > Manage), then run terraform apply again.")
			}
		}()
		var ms mo.VirtualMachineSnapshot
		if err := c.soap(ctx, func() error {
			return object.NewCommon(c.vc, snap).Properties(ctx, snap, []string{"config"}, &ms)
		}); err != nil {
			return nil, fault.Wrap(fault.FetchFailed, o.VM, err, "cannot read the snapshot's configuration")
		}
		cfg = &ms.Config
	} else {
		var m mo.VirtualMachine
		if err := c.soap(ctx, func() error { return vm.Properties(ctx, vm.Reference(), []string{"config"}, &m) }); err != nil || m.Config == nil {
			return nil, fault.Wrap(fault.FetchFailed, o.VM, err, "cannot read the VM's configuration")
		}
		cfg = m.Config
	}
	if afterSnapshot != nil {
		afterSnapshot(ctx)
	}
	info := describe(cfg, nil)
	if o.Disk < 0 || o.Disk >= len(info.Disks) {
		return nil, fault.New(fault.InvalidRequest, o.VM, "the VM has %d disk(s); disk %d does not exist", len(info.Disks), o.Disk)
	}
	disk := info.Disks[o.Disk]
	if disk.Backing == "rdm" {
		return nil, fault.New(fault.UnsupportedFormat, disk.Chain[0], "disk %d is a raw device mapping: there is no image to copy", o.Disk)
	}
	for i, dsPath := range disk.Chain {
		local, err := c.fetchVMDK(ctx, dc, dsPath, o, res)
		if err != nil {
			return nil, err
		}
		if i == 0 {
			res.Head = local
		}
	}
	res.Relogins = c.Relogins
	return res, nil
}

// fetchVMDK copies a descriptor and the extents it names.
func (c *Client) fetchVMDK(ctx context.Context, dc *object.Datacenter, dsPath string, o FetchOptions, res *Fetched) (string, error) {
	var p object.DatastorePath
	if !p.FromString(dsPath) {
		return "", fault.New(fault.CorruptDescriptor, dsPath, "not a datastore path")
	}
	local, err := c.fetchFile(ctx, dc, p, o, res)
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
		if strings.Contains(x.Filename, "/") || x.Filename == ".." {
			return "", fault.New(fault.PathOutsideSource, dsPath, "extent %q is outside the disk's folder", x.Filename)
		}
		ext := object.DatastorePath{Datastore: p.Datastore, Path: path.Join(path.Dir(p.Path), x.Filename)}
		if _, err := c.fetchFile(ctx, dc, ext, o, res); err != nil {
			return "", err
		}
	}
	return local, nil
}

func (c *Client) fetchFile(ctx context.Context, dc *object.Datacenter, p object.DatastorePath, o FetchOptions, res *Fetched) (string, error) {
	var ds *object.Datastore
	if err := c.soap(ctx, func() error {
		f := find.NewFinder(c.vc, true)
		f.SetDatacenter(dc)
		var err error
		ds, err = f.Datastore(ctx, p.Datastore)
		return err
	}); err != nil {
		return "", fault.New(fault.RemoteNotFound, p.String(), "no datastore %q", p.Datastore)
	}
	dest := filepath.Join(o.Dir, path.Base(p.Path))
	r, err := fetch.HTTP(ctx, ds.NewURL(p.Path).String(), dest, fetch.HTTPOptions{
		HTTPClient: &c.vc.Client.Client, Logger: o.Logger, Revalidate: true,
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
// and reading the disk, for tests that write to the VM's disk at that
// moment to prove the read comes from the snapshot. Not for production use.
func SetAfterSnapshotHook(f func(ctx context.Context)) { afterSnapshot = f }
