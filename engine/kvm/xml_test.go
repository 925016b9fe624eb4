package kvm

import (
	"strings"
	"testing"
)

func TestSpecXML(t *testing.T) {
	s := Spec{
		Name: "test-web", MemoryMiB: 2048, VCPUs: 2, Type: "qemu", Firmware: "uefi",
		Loader: "/fw/OVMF_CODE_4M.fd", NVRAMTemplate: "/fw/OVMF_VARS_4M.fd", NVRAM: "/var/lib/x_VARS.fd",
		Disks:      []Disk{{Path: "/d/disk0.qcow2", Format: "qcow2", Bus: "virtio"}, {Path: "/d/disk1.qcow2", Format: "qcow2", Bus: "scsi"}},
		NICs:       []NIC{{User: true, Model: "virtio", MAC: "52:54:00:12:34:56"}, {Network: "default", Model: "e1000"}},
		ConsoleLog: "/var/log/c.log",
	}
	x, err := s.XML()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`<domain type="qemu">`, `<memory unit="MiB">2048</memory>`, `<vcpu>2</vcpu>`, `machine="q35"`,
		`<loader readonly="yes" type="pflash">/fw/OVMF_CODE_4M.fd</loader>`, `template="/fw/OVMF_VARS_4M.fd"`,
		`<target dev="vda" bus="virtio"></target>`, `<target dev="sda" bus="scsi"></target>`, `model="virtio-scsi"`,
		`<interface type="user">`, `<mac address="52:54:00:12:34:56">`, `<source network="default">`,
		`<log file="/var/log/c.log" append="off">`, `<model type="vga"`} {
		if !strings.Contains(x, want) {
			t.Errorf("XML lacks %s:\n%s", want, x)
		}
	}
	o, err := Observe(x)
	if err != nil {
		t.Fatal(err)
	}
	if o.MemoryMiB != 2048 || o.VCPUs != 2 || o.Firmware != "uefi" || len(o.Disks) != 2 || len(o.MACs) != 1 {
		t.Errorf("observed %+v", o)
	}
	if _, err := (Spec{Name: "x", Type: "kvm", Firmware: "uefi"}).XML(); err == nil {
		t.Error("UEFI without firmware files accepted")
	}
}
