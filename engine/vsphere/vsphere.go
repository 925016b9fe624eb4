// Package vsphere reads what a migration needs from vCenter or ESXi with
// govmomi: a VM's hardware, its disks' backing chains, firmware and NICs.
// Credentials are taken as values, never logged, and never put in errors.
package vsphere

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"

	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/session"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/engine/guest"
)

// Options is how to reach and log in to vCenter or ESXi.
type Options struct {
	// URL is the SDK endpoint, such as https://vcenter.example/sdk.
	URL                string
	Username, Password string
	// Thumbprint pins the server's certificate (SHA-1 or SHA-256, as
	// govc shows it) when it is not signed by a trusted authority.
	Thumbprint string
	// Insecure skips certificate verification altogether.
	Insecure bool
}

// Client is a logged-in session.
type Client struct {
	vc   *vim25.Client
	sm   *session.Manager
	host string
	// The credentials, kept to log in again when a long copy outlives
	// the session.
	login *url.Userinfo
	// Relogins counts the sessions re-established.
	Relogins int
	// datastores caches the datastores ranged reads go to.
	datastores map[string]*object.Datastore
}

// Shown is u without credentials or query, for messages.
func Shown(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable URL)"
	}
	u.User, u.RawQuery = nil, ""
	return u.String()
}

// Connect logs in.
func Connect(ctx context.Context, o Options) (*Client, error) {
	shown := Shown(o.URL)
	u, err := soap.ParseURL(o.URL)
	if err != nil || u == nil {
		return nil, fault.New(fault.InvalidRequest, shown, "the vSphere URL is not valid").WithHint("Use https://<vcenter or esxi>/sdk.")
	}
	u.User = nil
	sc := soap.NewClient(u, o.Insecure)
	if o.Thumbprint != "" {
		sc.SetThumbprint(u.Host, o.Thumbprint)
	}
	vc, err := vim25.NewClient(ctx, sc)
	if err != nil {
		if isCertError(err) {
			return nil, fault.Wrap(fault.HostKeyMismatch, shown, errors.New(scrub(err.Error(), o.Password)), "the server's certificate is not trusted").
				WithHint("Pin its thumbprint (thumbprint = \"...\", as `govc about.cert -thumbprint` shows it), or set insecure = true on a lab system.")
		}
		return nil, fault.Wrap(fault.FetchFailed, shown, errors.New(scrub(err.Error(), o.Password)), "cannot reach vSphere").WithHint("Check the URL and the network.")
	}
	sm := session.NewManager(vc)
	if err := sm.Login(ctx, url.UserPassword(o.Username, o.Password)); err != nil {
		return nil, fault.New(fault.AuthFailed, shown, "vSphere refused the login of user %q", o.Username).
			WithHint("Check the username and password (provider vsphere_username and vsphere_password, or VSPHERE_USER and VSPHERE_PASSWORD).")
	}
	return &Client{vc: vc, sm: sm, host: u.Host, login: url.UserPassword(o.Username, o.Password)}, nil
}

// Logout ends the session.
func (c *Client) Logout(ctx context.Context) error { return c.sm.Logout(ctx) }

func isCertError(err error) bool {
	s := err.Error()
	return strings.Contains(s, "certificate") || strings.Contains(s, "thumbprint") || strings.Contains(s, "x509")
}

func scrub(s, secret string) string {
	if secret == "" {
		return s
	}
	return strings.ReplaceAll(s, secret, "REDACTED")
}

// VM is a virtual machine's configuration as a migration needs it.
type VM struct {
	Name      string `json:"name"`
	UUID      string `json:"uuid"`
	GuestID   string `json:"guest_id"`
	GuestName string `json:"guest_name"`
	Firmware  string `json:"firmware"` // bios or uefi
	CPUs      int    `json:"cpus"`
	MemoryMiB int    `json:"memory_mib"`
	Disks     []Disk `json:"disks"`
	NICs      []NIC  `json:"nics"`
	Snapshots int    `json:"snapshots"`
}

// Disk is one virtual disk and its backing chain, newest first.
type Disk struct {
	Label     string   `json:"label"`
	Capacity  int64    `json:"capacity"`
	Backing   string   `json:"backing"` // flat, sparse, sesparse...
	Chain     []string `json:"chain"`   // datastore paths: "[ds] vm/vm-000001.vmdk"
	Datastore string   `json:"datastore"`
	// Bus is the kind of the disk's controller: scsi, sata, nvme or ide;
	// empty when the VM names a controller it does not have.
	Bus string `json:"bus"`
	// Controller is the controller's bus number, Unit the disk's unit
	// number on it (-1 when vSphere reports none).
	Controller int `json:"controller"`
	Unit       int `json:"unit"`
	// Device is the slot as a .vmx names it, such as "scsi0:1"; empty
	// when Bus is.
	Device string `json:"device"`
	// Key is vSphere's device key; ChangeID the disk's changed block
	// tracking ID as of this configuration, empty without tracking.
	Key      int32  `json:"key,omitempty"`
	ChangeID string `json:"change_id,omitempty"`
}

// NIC is one network adapter.
type NIC struct {
	Label   string `json:"label"`
	Network string `json:"network"`
	Model   string `json:"model"`
	MAC     string `json:"mac"`
}

// FindVM reads a VM by name (or inventory path) in a datacenter.
func (c *Client) FindVM(ctx context.Context, datacenter, name string) (*VM, error) {
	f := find.NewFinder(c.vc, true)
	dc, err := f.DatacenterOrDefault(ctx, datacenter)
	if err != nil {
		return nil, fault.New(fault.RemoteNotFound, datacenter, "vSphere has no datacenter %q", datacenter).WithHint("Check datacenter.")
	}
	f.SetDatacenter(dc)
	ref, err := f.VirtualMachine(ctx, name)
	if err != nil {
		return nil, fault.New(fault.RemoteNotFound, name, "datacenter %s has no VM %q", dc.Name(), name).WithHint("Check vm: its name or inventory path.")
	}
	var m mo.VirtualMachine
	if err := ref.Properties(ctx, ref.Reference(), []string{"config", "snapshot"}, &m); err != nil {
		return nil, fault.Wrap(fault.FetchFailed, name, err, "cannot read the VM's configuration")
	}
	if m.Config == nil {
		return nil, fault.New(fault.FetchFailed, name, "the VM has no configuration (it may be inaccessible)")
	}
	return describe(m.Config, m.Snapshot), nil
}

func describe(cfg *types.VirtualMachineConfigInfo, snap *types.VirtualMachineSnapshotInfo) *VM {
	vm := &VM{Name: cfg.Name, UUID: cfg.Uuid, GuestID: cfg.GuestId, GuestName: cfg.GuestFullName, Firmware: "bios",
		CPUs: int(cfg.Hardware.NumCPU), MemoryMiB: int(cfg.Hardware.MemoryMB)}
	if cfg.Firmware == string(types.GuestOsDescriptorFirmwareTypeEfi) {
		vm.Firmware = "uefi"
	}
	if snap != nil {
		vm.Snapshots = countSnapshots(snap.RootSnapshotList)
	}
	ctrls := controllers(cfg.Hardware.Device)
	for _, d := range cfg.Hardware.Device {
		dev := d.GetVirtualDevice()
		label := ""
		if dev.DeviceInfo != nil {
			label = dev.DeviceInfo.GetDescription().Label
		}
		switch x := d.(type) {
		case *types.VirtualDisk:
			disk := Disk{Label: label, Capacity: x.CapacityInBytes, Key: dev.Key}
			if b, ok := x.Backing.(*types.VirtualDiskFlatVer2BackingInfo); ok {
				disk.ChangeID = b.ChangeId
			}
			if disk.Capacity == 0 {
				disk.Capacity = x.CapacityInKB * 1024
			}
			disk.Backing, disk.Chain = chainOf(x.Backing)
			if len(disk.Chain) > 0 {
				disk.Datastore = datastoreOf(disk.Chain[0])
			}
			disk.Unit = -1
			if x.UnitNumber != nil {
				disk.Unit = int(*x.UnitNumber)
			}
			if c, ok := ctrls[x.ControllerKey]; ok {
				disk.Bus, disk.Controller = c.bus, c.number
				if disk.Unit >= 0 {
					disk.Device = guest.DiskSlot{Bus: c.bus, Controller: c.number, Unit: disk.Unit}.String()
				}
			}
			vm.Disks = append(vm.Disks, disk)
		case types.BaseVirtualEthernetCard:
			card := x.GetVirtualEthernetCard()
			n := NIC{Label: label, MAC: strings.ToLower(card.MacAddress), Model: nicModel(x)}
			switch b := card.Backing.(type) {
			case *types.VirtualEthernetCardNetworkBackingInfo:
				n.Network = b.DeviceName
			case *types.VirtualEthernetCardDistributedVirtualPortBackingInfo:
				n.Network = "dvportgroup:" + b.Port.PortgroupKey
			}
			vm.NICs = append(vm.NICs, n)
		}
	}
	sortDisks(vm.Disks)
	return vm
}

func (d Disk) slot() guest.DiskSlot {
	return guest.DiskSlot{Bus: d.Bus, Controller: d.Controller, Unit: d.Unit}
}

// sortDisks puts disks in controller order, by slot and not by label:
// labels sort "Hard disk 10" before "Hard disk 2", and say nothing of the
// controller a disk hangs off.
func sortDisks(ds []Disk) {
	sort.SliceStable(ds, func(i, j int) bool {
		a, b := ds[i], ds[j]
		if c := a.slot().Compare(b.slot()); c != 0 {
			return c < 0
		}
		return a.Label < b.Label
	})
}

type controller struct {
	bus    string
	number int
}

// controllers maps the keys of the VM's disk controllers to their kind and
// bus number.
func controllers(devs []types.BaseVirtualDevice) map[int32]controller {
	m := map[int32]controller{}
	for _, d := range devs {
		var bus string
		switch d.(type) {
		case types.BaseVirtualSCSIController:
			bus = "scsi"
		case *types.VirtualAHCIController, types.BaseVirtualSATAController:
			bus = "sata"
		case *types.VirtualNVMEController:
			bus = "nvme"
		case *types.VirtualIDEController:
			bus = "ide"
		default:
			continue
		}
		c := d.(types.BaseVirtualController).GetVirtualController()
		m[c.Key] = controller{bus: bus, number: int(c.BusNumber)}
	}
	return m
}

func countSnapshots(ts []types.VirtualMachineSnapshotTree) int {
	n := 0
	for _, t := range ts {
		n += 1 + countSnapshots(t.ChildSnapshotList)
	}
	return n
}

// chainOf walks a disk backing's parents: the newest file first.
func chainOf(b types.BaseVirtualDeviceBackingInfo) (kind string, chain []string) {
	for b != nil {
		switch x := b.(type) {
		case *types.VirtualDiskFlatVer2BackingInfo:
			kind, chain = pick(kind, "flat"), append(chain, x.FileName)
			if x.Parent == nil {
				return kind, chain
			}
			b = x.Parent
		case *types.VirtualDiskSeSparseBackingInfo:
			kind, chain = pick(kind, "sesparse"), append(chain, x.FileName)
			if x.Parent == nil {
				return kind, chain
			}
			b = x.Parent
		case *types.VirtualDiskSparseVer2BackingInfo:
			kind, chain = pick(kind, "sparse"), append(chain, x.FileName)
			if x.Parent == nil {
				return kind, chain
			}
			b = x.Parent
		case *types.VirtualDiskRawDiskMappingVer1BackingInfo:
			return pick(kind, "rdm"), append(chain, x.FileName)
		default:
			return pick(kind, fmt.Sprintf("%T", b)), chain
		}
	}
	return kind, chain
}

func pick(have, kind string) string {
	if have != "" {
		return have
	}
	return kind
}

func datastoreOf(p string) string {
	if strings.HasPrefix(p, "[") {
		if i := strings.Index(p, "]"); i > 0 {
			return p[1:i]
		}
	}
	return ""
}

func nicModel(c types.BaseVirtualEthernetCard) string {
	switch c.(type) {
	case *types.VirtualVmxnet3:
		return "vmxnet3"
	case *types.VirtualE1000e:
		return "e1000e"
	case *types.VirtualE1000:
		return "e1000"
	case *types.VirtualPCNet32:
		return "pcnet32"
	case *types.VirtualVmxnet2:
		return "vmxnet2"
	}
	return strings.ToLower(strings.TrimPrefix(fmt.Sprintf("%T", c), "*types.Virtual"))
}
