package ovf

import (
	"fmt"
	"strings"
	"testing"
)

// twoDiskOVF lists its disks out of slot order (the data disk first in
// DiskSection) on a SCSI and a SATA controller, with a CD-ROM on IDE, as
// vSphere exports a VM whose disks were added in another order.
const twoDiskOVF = `<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"
  xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData">
  <References>
    <File ovf:id="file1" ovf:href="web-data.vmdk"/>
    <File ovf:id="file2" ovf:href="web-boot.vmdk"/>
  </References>
  <DiskSection><Info>disks</Info>
    <Disk ovf:capacity="1" ovf:capacityAllocationUnits="byte * 2^30" ovf:diskId="data" ovf:fileRef="file1"/>
    <Disk ovf:capacity="2" ovf:capacityAllocationUnits="byte * 2^30" ovf:diskId="boot" ovf:fileRef="file2"/>
  </DiskSection>
  <VirtualSystem ovf:id="web"><Info>vm</Info>
    <VirtualHardwareSection><Info>hw</Info>
      <Item><rasd:Address>0</rasd:Address><rasd:InstanceID>3</rasd:InstanceID><rasd:ResourceSubType>lsilogic</rasd:ResourceSubType><rasd:ResourceType>6</rasd:ResourceType></Item>
      <Item><rasd:Address>0</rasd:Address><rasd:InstanceID>4</rasd:InstanceID><rasd:ResourceSubType>vmware.sata.ahci</rasd:ResourceSubType><rasd:ResourceType>20</rasd:ResourceType></Item>
      <Item><rasd:Address>1</rasd:Address><rasd:InstanceID>5</rasd:InstanceID><rasd:ResourceType>5</rasd:ResourceType></Item>
      <Item><rasd:AddressOnParent>0</rasd:AddressOnParent><rasd:InstanceID>6</rasd:InstanceID><rasd:Parent>5</rasd:Parent><rasd:ResourceType>15</rasd:ResourceType></Item>
      <Item><rasd:AddressOnParent>%s</rasd:AddressOnParent><rasd:HostResource>ovf:/disk/data</rasd:HostResource><rasd:InstanceID>7</rasd:InstanceID><rasd:Parent>%s</rasd:Parent><rasd:ResourceType>17</rasd:ResourceType></Item>
      <Item><rasd:AddressOnParent>1</rasd:AddressOnParent><rasd:HostResource>ovf:/disk/boot</rasd:HostResource><rasd:InstanceID>8</rasd:InstanceID><rasd:Parent>3</rasd:Parent><rasd:ResourceType>17</rasd:ResourceType></Item>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>`

func TestDiskSlots(t *testing.T) {
	t.Run("controllers and units", func(t *testing.T) {
		o, err := ParseOVF(strings.NewReader(fmt.Sprintf(twoDiskOVF, "0", "4")), "web.ovf")
		if err != nil {
			t.Fatal(err)
		}
		got := o.InSlotOrder()
		if len(got) != 2 || got[0].ID != "boot" || got[0].Bus != "scsi" || got[0].Unit != 1 || got[1].ID != "data" || got[1].Bus != "sata" || got[1].Unit != 0 {
			t.Errorf("slot order %+v, want boot at scsi0:1 then data at sata0:0", got)
		}
		if o.Disks[0].ID != "data" {
			t.Errorf("Disks keeps the descriptor's order (source.ova.disk indexes it), got %+v", o.Disks)
		}
	})
	t.Run("two disks in one slot", func(t *testing.T) {
		o, err := ParseOVF(strings.NewReader(fmt.Sprintf(twoDiskOVF, "1", "3")), "web.ovf")
		if err != nil || !strings.Contains(o.SlotProblem, "scsi0:1") {
			t.Fatalf("err = %v, problem %q: want both disks at scsi0:1 noted, one disk still convertible", err, o.SlotProblem)
		}
	})
	t.Run("a unit that is not a number", func(t *testing.T) {
		o, err := ParseOVF(strings.NewReader(fmt.Sprintf(twoDiskOVF, "x", "4")), "web.ovf")
		if err != nil || !strings.Contains(o.SlotProblem, `"x"`) {
			t.Fatalf("err = %v, problem %q", err, o.SlotProblem)
		}
	})
	t.Run("no AddressOnParent", func(t *testing.T) {
		// The data disk's drive item gives no unit: it takes the first
		// free one of its controller, beside the boot disk at scsi0:1.
		text := strings.Replace(fmt.Sprintf(twoDiskOVF, "0", "3"), "<rasd:AddressOnParent>0</rasd:AddressOnParent><rasd:HostResource>ovf:/disk/data", "<rasd:HostResource>ovf:/disk/data", 1)
		o, err := ParseOVF(strings.NewReader(text), "web.ovf")
		if err != nil || o.SlotProblem != "" {
			t.Fatalf("err = %v, problem %q", err, o.SlotProblem)
		}
		got := o.InSlotOrder()
		if got[0].ID != "data" || got[0].Unit != 0 || got[1].ID != "boot" || got[1].Unit != 1 {
			t.Errorf("slots %+v", got)
		}
	})
	t.Run("no drive items", func(t *testing.T) {
		// The one-disk descriptor has no controller: its disk gets scsi0:0.
		o, err := ParseOVF(strings.NewReader(fmt.Sprintf(testOVF, "d.vmdk")), "web01.ovf")
		if err != nil {
			t.Fatal(err)
		}
		if d := o.Disks[0]; d.Bus != "scsi" || d.Controller != 0 || d.Unit != 0 {
			t.Errorf("slot %+v, want scsi0:0", d)
		}
	})
}
