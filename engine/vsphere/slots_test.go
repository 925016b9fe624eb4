package vsphere

import (
	"fmt"
	"strings"
	"testing"

	"github.com/vmware/govmomi/vim25/types"
)

// Controllers of each kind, as vSphere reports them.
func scsiCtrl(key, bus int32) types.BaseVirtualDevice {
	return &types.ParaVirtualSCSIController{VirtualSCSIController: types.VirtualSCSIController{
		VirtualController: types.VirtualController{VirtualDevice: types.VirtualDevice{Key: key}, BusNumber: bus}}}
}

func lsiCtrl(key, bus int32) types.BaseVirtualDevice {
	return &types.VirtualLsiLogicController{VirtualSCSIController: types.VirtualSCSIController{
		VirtualController: types.VirtualController{VirtualDevice: types.VirtualDevice{Key: key}, BusNumber: bus}}}
}

func ahciCtrl(key, bus int32) types.BaseVirtualDevice {
	return &types.VirtualAHCIController{VirtualSATAController: types.VirtualSATAController{
		VirtualController: types.VirtualController{VirtualDevice: types.VirtualDevice{Key: key}, BusNumber: bus}}}
}

func nvmeCtrl(key, bus int32) types.BaseVirtualDevice {
	return &types.VirtualNVMEController{VirtualController: types.VirtualController{VirtualDevice: types.VirtualDevice{Key: key}, BusNumber: bus}}
}

func ideCtrl(key, bus int32) types.BaseVirtualDevice {
	return &types.VirtualIDEController{VirtualController: types.VirtualController{VirtualDevice: types.VirtualDevice{Key: key}, BusNumber: bus}}
}

// vdisk is a flat disk labelled label on controller ctrl at unit.
func vdisk(label string, ctrl, unit int32) types.BaseVirtualDevice {
	return &types.VirtualDisk{VirtualDevice: types.VirtualDevice{
		Key:           2000 + ctrl*100 + unit,
		DeviceInfo:    &types.Description{Label: label},
		ControllerKey: ctrl,
		UnitNumber:    types.NewInt32(unit),
		Backing: &types.VirtualDiskFlatVer2BackingInfo{VirtualDeviceFileBackingInfo: types.VirtualDeviceFileBackingInfo{
			FileName: fmt.Sprintf("[ds] vm/%s.vmdk", strings.ReplaceAll(label, " ", "_"))}},
	}}
}

func TestDescribeDiskSlots(t *testing.T) {
	for _, tc := range []struct {
		name string
		devs []types.BaseVirtualDevice
		// want lists the disks in order as "label=device".
		want []string
	}{{
		name: "units sort as numbers, not labels",
		devs: []types.BaseVirtualDevice{scsiCtrl(1000, 0), vdisk("Hard disk 10", 1000, 10), vdisk("Hard disk 2", 1000, 2), vdisk("Hard disk 1", 1000, 0)},
		want: []string{"Hard disk 1=scsi0:0", "Hard disk 2=scsi0:2", "Hard disk 10=scsi0:10"},
	}, {
		name: "bus kinds: scsi, sata, nvme, ide",
		devs: []types.BaseVirtualDevice{ideCtrl(200, 0), nvmeCtrl(31000, 0), ahciCtrl(15000, 0), lsiCtrl(1000, 0),
			vdisk("Hard disk 1", 200, 0), vdisk("Hard disk 2", 31000, 0), vdisk("Hard disk 3", 15000, 0), vdisk("Hard disk 4", 1000, 0)},
		want: []string{"Hard disk 4=scsi0:0", "Hard disk 3=sata0:0", "Hard disk 2=nvme0:0", "Hard disk 1=ide0:0"},
	}, {
		name: "controller bus number before unit, whatever the key",
		devs: []types.BaseVirtualDevice{scsiCtrl(1000, 1), scsiCtrl(1001, 0), ahciCtrl(15000, 1), ahciCtrl(15001, 0),
			vdisk("a", 1000, 0), vdisk("b", 1001, 3), vdisk("c", 15000, 0), vdisk("d", 15001, 1)},
		want: []string{"b=scsi0:3", "a=scsi1:0", "d=sata0:1", "c=sata1:0"},
	}, {
		name: "a disk on a controller the VM lacks comes last, without a slot",
		devs: []types.BaseVirtualDevice{scsiCtrl(1000, 0), vdisk("lost", 9999, 0), vdisk("Hard disk 1", 1000, 0)},
		want: []string{"Hard disk 1=scsi0:0", "lost="},
	}, {
		name: "label breaks a tie",
		devs: []types.BaseVirtualDevice{vdisk("z", 9999, 0), vdisk("y", 9998, 0)},
		want: []string{"y=", "z="},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			vm := describe(&types.VirtualMachineConfigInfo{Hardware: types.VirtualHardware{Device: tc.devs}}, nil)
			var got []string
			for _, d := range vm.Disks {
				got = append(got, d.Label+"="+d.Device)
				if d.Device != "" && d.Device != fmt.Sprintf("%s%d:%d", d.Bus, d.Controller, d.Unit) {
					t.Errorf("disk %s: device %q but bus %q controller %d unit %d", d.Label, d.Device, d.Bus, d.Controller, d.Unit)
				}
			}
			if strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Errorf("disks %v, want %v", got, tc.want)
			}
		})
	}
}
