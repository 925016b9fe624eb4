package testimg

import (
	"os"
	"path/filepath"
)

// VM is a VMware VM folder written by TwoDiskVM.
type VM struct {
	// VMX is the VM's configuration file; Dir its folder.
	VMX, Dir string
	// Heads are the disks' newest files, in the VM's order (scsi0:0,
	// scsi0:1); Want their guest-visible content, in the same order.
	Heads []string
	Want  []*Expected
}

// TwoDiskVM writes a VM folder into dir: web.vmx naming a two-layer chain
// on scsi0:0 and a one-layer data disk on scsi0:1 (listed first in the
// file, so order comes from the slots), 2 vCPUs, 1024 MiB, BIOS, and one
// vmxnet3 NIC with MAC 00:0c:29:aa:bb:cc.
func TwoDiskVM(dir string) (*VM, error) {
	web, err := VMDKChain(dir, "web", "monolithicSparse", 8*MiB, BaseLayer, Snap1)
	if err != nil {
		return nil, err
	}
	data, err := VMDKChain(dir, "data", "twoGbMaxExtentSparse", 8*MiB, BaseLayer)
	if err != nil {
		return nil, err
	}
	text := `config.version = "8"
displayName = "web"
memSize = "1024"
numvcpus = "2"
scsi0.present = "TRUE"
scsi0.virtualDev = "pvscsi"
scsi0:1.present = "TRUE"
scsi0:1.fileName = "` + filepath.Base(data[0]) + `"
scsi0:0.present = "TRUE"
scsi0:0.fileName = "` + filepath.Base(web[0]) + `"
ethernet0.present = "TRUE"
ethernet0.virtualDev = "vmxnet3"
ethernet0.addressType = "generated"
ethernet0.generatedAddress = "00:0c:29:aa:bb:cc"
`
	vmx := filepath.Join(dir, "web.vmx")
	if err := os.WriteFile(vmx, []byte(text), 0o644); err != nil {
		return nil, err
	}
	return &VM{VMX: vmx, Dir: dir, Heads: []string{web[0], data[0]},
		Want: []*Expected{NewExpected(8*MiB, BaseLayer, Snap1), NewExpected(8*MiB, BaseLayer)}}, nil
}
