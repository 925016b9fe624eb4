package testimg

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// OVF is a minimal descriptor in vSphere's shape for one disk file.
func OVF(name, diskFile string, capacityMiB int64, cpus, memoryMiB int, efi bool) string {
	fw := ""
	if efi {
		fw = `<vmw:Config ovf:required="false" vmw:key="firmware" vmw:value="efi"/>`
	}
	return fmt.Sprintf(`<?xml version="1.0"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"
  xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vmw="http://www.vmware.com/schema/ovf">
  <References><File ovf:id="f1" ovf:href="%s"/></References>
  <DiskSection><Info>disks</Info><Disk ovf:capacity="%d" ovf:capacityAllocationUnits="byte * 2^20" ovf:diskId="d1" ovf:fileRef="f1"/></DiskSection>
  <VirtualSystem ovf:id="%s"><Info>vm</Info><Name>%s</Name>
    <VirtualHardwareSection><Info>hw</Info>
      <Item><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>%d</rasd:VirtualQuantity></Item>
      <Item><rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits><rasd:InstanceID>2</rasd:InstanceID><rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>%d</rasd:VirtualQuantity></Item>
      <Item><rasd:Address>00:50:56:8a:3c:1e</rasd:Address><rasd:Connection>VM Network</rasd:Connection><rasd:InstanceID>3</rasd:InstanceID><rasd:ResourceSubType>VmxNet3</rasd:ResourceSubType><rasd:ResourceType>10</rasd:ResourceType></Item>
      %s
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
`, diskFile, capacityMiB, name, name, cpus, memoryMiB, fw)
}

// OVA writes an archive the way vSphere exports one: the OVF, a SHA256
// manifest, then the disk files (streamOptimized VMDKs in real exports).
func OVA(path, name, ovf string, disks ...string) error {
	sum := func(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
	mf := fmt.Sprintf("SHA256(%s.ovf)= %s\n", name, sum([]byte(ovf)))
	for _, d := range disks {
		h, err := fileSHA256(d)
		if err != nil {
			return err
		}
		mf += fmt.Sprintf("SHA256(%s)= %s\n", filepath.Base(d), h)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	for _, m := range []struct {
		n string
		b []byte
	}{{name + ".ovf", []byte(ovf)}, {name + ".mf", []byte(mf)}} {
		if err := tw.WriteHeader(&tar.Header{Name: m.n, Size: int64(len(m.b)), Mode: 0o644, Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		if _, err := tw.Write(m.b); err != nil {
			return err
		}
	}
	for _, d := range disks {
		if err := addFile(tw, d); err != nil {
			return err
		}
	}
	return tw.Close()
}

func fileSHA256(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// addFile streams a disk into the archive: fixture guests are hundreds of
// MiB.
func addFile(tw *tar.Writer, p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Name: filepath.Base(p), Size: fi.Size(), Mode: 0o644, Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	_, err = io.Copy(tw, f)
	return err
}

// VMOVF is the descriptor of a VM with several disks: disk i is files[i],
// attached at slots[i] ("scsi0:1", "sata0:0"), listed in DiskSection in
// the order given, which need not be the slots' order.
func VMOVF(name string, cpus, memoryMiB int, files, slots []string, capacityMiB int64) string {
	var refs, disks, items string
	ctls := map[string]int{}
	id := 10
	for i, f := range files {
		refs += fmt.Sprintf(`<File ovf:id="f%d" ovf:href="%s"/>`, i, f)
		disks += fmt.Sprintf(`<Disk ovf:capacity="%d" ovf:capacityAllocationUnits="byte * 2^20" ovf:diskId="d%d" ovf:fileRef="f%d"/>`, capacityMiB, i, i)
		var bus string
		var ctl, unit int
		bus = slots[i][:strings.IndexAny(slots[i], "0123456789")]
		fmt.Sscanf(slots[i][len(bus):], "%d:%d", &ctl, &unit)
		key := fmt.Sprintf("%s%d", bus, ctl)
		inst, ok := ctls[key]
		if !ok {
			id++
			inst = id
			ctls[key] = inst
			typ, sub := 6, "lsilogic"
			if bus == "sata" {
				typ, sub = 20, "vmware.sata.ahci"
			}
			items += fmt.Sprintf(`<Item><rasd:Address>%d</rasd:Address><rasd:InstanceID>%d</rasd:InstanceID><rasd:ResourceSubType>%s</rasd:ResourceSubType><rasd:ResourceType>%d</rasd:ResourceType></Item>`, ctl, inst, sub, typ)
		}
		id++
		items += fmt.Sprintf(`<Item><rasd:AddressOnParent>%d</rasd:AddressOnParent><rasd:HostResource>ovf:/disk/d%d</rasd:HostResource><rasd:InstanceID>%d</rasd:InstanceID><rasd:Parent>%d</rasd:Parent><rasd:ResourceType>17</rasd:ResourceType></Item>`, unit, i, id, inst)
	}
	return fmt.Sprintf(`<?xml version="1.0"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"
  xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData">
  <References>%s</References>
  <DiskSection><Info>disks</Info>%s</DiskSection>
  <VirtualSystem ovf:id="%s"><Info>vm</Info><Name>%s</Name>
    <VirtualHardwareSection><Info>hw</Info>
      <Item><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>%d</rasd:VirtualQuantity></Item>
      <Item><rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits><rasd:InstanceID>2</rasd:InstanceID><rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>%d</rasd:VirtualQuantity></Item>
      <Item><rasd:Address>00:50:56:8a:3c:1e</rasd:Address><rasd:Connection>VM Network</rasd:Connection><rasd:InstanceID>3</rasd:InstanceID><rasd:ResourceSubType>VmxNet3</rasd:ResourceSubType><rasd:ResourceType>10</rasd:ResourceType></Item>
      %s
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
`, refs, disks, name, name, cpus, memoryMiB, items)
}
