package source

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"strings"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/engine/guest"
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
func (v *vsphereSource) fingerprint(vm *vsphere.VM, n int) string {
	d := vm.Disks[n]
	h := sha256.Sum256([]byte(strings.Join([]string{vsphere.Shown(v.s.URL), vm.UUID, fmt.Sprint(n), strings.Join(d.Chain, "|"), fmt.Sprint(d.Capacity)}, "\x00")))
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
	if v.env.WholeVM {
		return v.locateVM(ctx, c, vm, fetchNow)
	}
	if s.Warm != nil {
		return nil, nil, fault.New(fault.InvalidRequest, s.VM, "warm migration converts whole VMs").
			WithHint("Use the vmconv_vm_conversion resource for a warm migration.")
	}
	if s.Disk < 0 || s.Disk >= len(vm.Disks) {
		return nil, nil, fault.New(fault.InvalidRequest, s.VM, "the VM has %d disk(s); disk %d does not exist", len(vm.Disks), s.Disk).
			WithHint("Set source.vsphere.disk to a number from 0 to %d.", len(vm.Disks)-1)
	}
	fp := v.fingerprint(vm, s.Disk)
	if !fetchNow {
		return nil, &Remote{Fingerprint: fp, Length: vm.Disks[s.Disk].Capacity, AcceptRanges: true}, nil
	}
	dir := v.env.entry("vsphere", fp)
	if err := v.env.use(dir); err != nil {
		return nil, nil, err
	}
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

// locateVM is every disk of the VM, in slot order, with the VM's
// hardware: planned from the VM's configuration, or copied (fetchNow) from
// one snapshot of the whole VM, so that its disks agree with each other.
func (v *vsphereSource) locateVM(ctx context.Context, c *vsphere.Client, vm *vsphere.VM, fetchNow bool) (*Local, *Remote, error) {
	s := v.s
	if len(vm.Disks) == 0 {
		return nil, nil, fault.New(fault.InvalidRequest, s.VM, "the VM has no virtual disk").WithHint("Check vm: its name or inventory path.")
	}
	l := &Local{Hardware: &Hardware{VCPUs: max(vm.CPUs, 1), MemoryMiB: vm.MemoryMiB, Firmware: vm.Firmware, GuestOS: vm.GuestID},
		Note: fmt.Sprintf("%d disk(s) of the VM", len(vm.Disks))}
	for _, n := range vm.NICs {
		l.Hardware.NICs = append(l.Hardware.NICs, NIC{MAC: n.MAC, Model: n.Model, Network: n.Network})
	}
	h := sha256.New()
	for i, d := range vm.Disks {
		slot, dev := guest.DiskSlot{Bus: d.Bus, Controller: d.Controller, Unit: d.Unit}, d.Device
		if dev == "" {
			slot = listSlot(i)
			dev = slot.String()
		}
		fp, shown := v.fingerprint(vm, i), ""
		if len(d.Chain) > 0 {
			shown = d.Chain[0]
		}
		fmt.Fprintln(h, fp)
		l.Disks = append(l.Disks, Disk{Slot: slot, Device: dev, Fingerprint: fp, Shown: shown, Remote: &Remote{Fingerprint: fp, Length: d.Capacity, AcceptRanges: true}})
	}
	l.Fingerprint = "vsphere:v1:" + hex.EncodeToString(h.Sum(nil))
	if s.Warm != nil {
		var err error
		if l.WarmPreview, err = v.warmPreview(vm); err != nil {
			return nil, nil, err
		}
	}
	if !fetchNow {
		return l, nil, nil
	}
	if s.Warm != nil {
		l, err := v.cutover(ctx, c, l)
		return l, nil, err
	}
	dir := v.env.entry("vsphere", l.Fingerprint)
	if err := v.env.use(dir); err != nil {
		return nil, nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, fault.Wrap(fault.OutputNotWritable, dir, err, "cannot create the download folder")
	}
	f, err := c.FetchVM(ctx, vsphere.FetchVMOptions{Datacenter: s.Datacenter, VM: s.VM, Snapshot: s.Snapshot, Dir: dir, Logger: v.env.Log})
	if err != nil {
		return nil, nil, err
	}
	if len(f.Disks) != len(l.Disks) {
		return nil, nil, fault.New(fault.SourceChanged, s.VM, "the VM had %d disks when it was read and %d when it was copied", len(l.Disks), len(f.Disks)).
			WithHint("Run terraform plan again.")
	}
	for i := range l.Disks {
		l.Disks[i].Head, l.Disks[i].Remote = f.Disks[i].Head, nil
	}
	v.env.Log.Log("info", fmt.Sprintf("copied %d disk(s) of %s (%d file(s) reused, %d re-login(s))", len(f.Disks), s.VM, f.Reused, f.Relogins),
		map[string]any{"snapshot": f.Snapshot, "snapshot_removed": f.Removed})
	return l, nil, nil
}

func (v *vsphereSource) Describe(r *Remote) (string, string) {
	s := v.s
	note := ", read as it is (no snapshot: the VM should be powered off)"
	if s.Snapshot {
		note = ", read from a snapshot taken for the copy and removed after it"
	}
	if v.env.WholeVM && s.Warm != nil {
		return fmt.Sprintf("%s VM %q", vsphere.Shown(s.URL), s.VM),
			fmt.Sprintf("shut VM %q down (a guest shutdown, then a power off after %s), sync the areas changed since the last sync into the staging images from a snapshot removed after it, and convert those",
				s.VM, warmTimeout(s.Warm))
	}
	if v.env.WholeVM {
		if s.Snapshot {
			note = ", all read from one snapshot of the VM taken for the copy and removed after it"
		}
		return fmt.Sprintf("%s VM %q", vsphere.Shown(s.URL), s.VM),
			fmt.Sprintf("copy every disk of VM %q with its backing chain through the datastore's /folder interface into the cache%s", s.VM, note)
	}
	return fmt.Sprintf("%s VM %q disk %d", vsphere.Shown(s.URL), s.VM, s.Disk),
		fmt.Sprintf("copy disk %d%s of VM %q with its backing chain through the datastore's /folder interface into the cache%s", s.Disk, sizeNote(r), s.VM, note)
}

func (*vsphereSource) Protected() []string     { return nil }
func (*vsphereSource) Relabel(err error) error { return err }
