package source

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"strings"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/engine/vsphere"
)

// vsphereSource is a VM's disk in vCenter or ESXi, copied with its backing
// chain through the datastore's /folder interface, from a snapshot that is
// always removed.
type vsphereSource struct {
	s   *VSphere
	env Env
}

func (*vsphereSource) Kind() string { return "vsphere" }

// VSphereOptions are the connection settings of a vSphere source.
func VSphereOptions(s *VSphere) vsphere.Options {
	return vsphere.Options{URL: s.URL, Username: s.Username, Password: s.Password, Thumbprint: s.Thumbprint, Insecure: s.Insecure}
}

// fingerprint identifies a VM disk from its configuration: the VM, the
// disk's backing chain and capacity. A new snapshot, a grown disk or
// another VM changes it; writes inside the guest do not (reading them
// would mean reading the disk).
func (v *vsphereSource) fingerprint(vm *vsphere.VM) string {
	d := vm.Disks[v.s.Disk]
	h := sha256.Sum256([]byte(strings.Join([]string{vsphere.Shown(v.s.URL), vm.UUID, fmt.Sprint(v.s.Disk), strings.Join(d.Chain, "|"), fmt.Sprint(d.Capacity)}, "\x00")))
	return "vsphere:v1:" + hex.EncodeToString(h[:])
}

// Locate reads the VM's configuration and, with fetchNow, copies the disk
// into the cache.
func (v *vsphereSource) Locate(ctx context.Context, fetchNow bool) (*Local, *Remote, error) {
	s := v.s
	c, err := vsphere.Connect(ctx, VSphereOptions(s))
	if err != nil {
		return nil, nil, err
	}
	defer c.Logout(context.WithoutCancel(ctx))
	vm, err := c.FindVM(ctx, s.Datacenter, s.VM)
	if err != nil {
		return nil, nil, err
	}
	if s.Disk < 0 || s.Disk >= len(vm.Disks) {
		return nil, nil, fault.New(fault.InvalidRequest, s.VM, "the VM has %d disk(s); disk %d does not exist", len(vm.Disks), s.Disk).
			WithHint("Set source.vsphere.disk to a number from 0 to %d.", len(vm.Disks)-1)
	}
	fp := v.fingerprint(vm)
	if !fetchNow {
		return nil, &Remote{Fingerprint: fp, Length: vm.Disks[s.Disk].Capacity, AcceptRanges: true}, nil
	}
	dir := v.env.entry("vsphere", fp)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, fault.Wrap(fault.OutputNotWritable, dir, err, "cannot create the download folder")
	}
	f, err := c.FetchDisk(ctx, vsphere.FetchOptions{Datacenter: s.Datacenter, VM: s.VM, Disk: s.Disk, Snapshot: s.Snapshot, Dir: dir, Logger: v.env.Log})
	if err != nil {
		return nil, nil, err
	}
	v.env.Log.Log("info", fmt.Sprintf("copied %d file(s) of %s disk %d (%d reused, %d re-login(s))", len(f.Files), s.VM, s.Disk, f.Reused, f.Relogins),
		map[string]any{"snapshot": f.Snapshot, "snapshot_removed": f.Removed})
	return &Local{Head: f.Head, Fingerprint: fp}, nil, nil
}

func (v *vsphereSource) Describe(r *Remote) (string, string) {
	s := v.s
	note := ", read as it is (no snapshot: the VM should be powered off)"
	if s.Snapshot {
		note = ", read from a snapshot taken for the copy and removed after it"
	}
	return fmt.Sprintf("%s VM %q disk %d", vsphere.Shown(s.URL), s.VM, s.Disk),
		fmt.Sprintf("copy disk %d%s of VM %q with its backing chain through the datastore's /folder interface into the cache%s", s.Disk, sizeNote(r), s.VM, note)
}

func (*vsphereSource) Protected() []string     { return nil }
func (*vsphereSource) Relabel(err error) error { return err }
