package vcsimtest

import (
	"testing"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

// SCSIKey is the key of the VM's first SCSI controller.
func SCSIKey(t testing.TB, vm *simulator.VirtualMachine) int32 {
	t.Helper()
	for _, d := range vm.Config.Hardware.Device {
		if c, ok := d.(types.BaseVirtualSCSIController); ok {
			return c.GetVirtualSCSIController().Key
		}
	}
	t.Fatal("the simulator's VM has no SCSI controller")
	return 0
}

// AddDisk attaches a flat disk backed by fileName (a datastore path) at
// unit of the controller with key controller, as vSphere's reconfigure
// would: the simulator's own reconfigure creates the file, and tests need
// disks whose files hold real VMDK content they wrote.
func AddDisk(vm *simulator.VirtualMachine, label string, controller, unit int32, fileName string, size int64) {
	vm.Config.Hardware.Device = append(vm.Config.Hardware.Device, &types.VirtualDisk{
		VirtualDevice: types.VirtualDevice{
			Key:           2000 + 100*(controller%100) + unit + 50,
			DeviceInfo:    &types.Description{Label: label, Summary: label},
			ControllerKey: controller,
			UnitNumber:    types.NewInt32(unit),
			Backing: &types.VirtualDiskFlatVer2BackingInfo{
				VirtualDeviceFileBackingInfo: types.VirtualDeviceFileBackingInfo{FileName: fileName},
				DiskMode:                     string(types.VirtualDiskModePersistent),
				ThinProvisioned:              types.NewBool(false),
			},
		},
		CapacityInBytes: size,
		CapacityInKB:    size / 1024,
	})
}
