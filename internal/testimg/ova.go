package testimg

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
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
// manifest, then the disk file (a streamOptimized VMDK in real exports).
func OVA(path, name, ovf, disk string) error {
	df, err := os.Open(disk)
	if err != nil {
		return err
	}
	defer df.Close()
	h := sha256.New()
	size, err := io.Copy(h, df)
	if err != nil {
		return err
	}
	sum := func(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
	base := filepath.Base(disk)
	mf := fmt.Sprintf("SHA256(%s.ovf)= %s\nSHA256(%s)= %s\n", name, sum([]byte(ovf)), base, hex.EncodeToString(h.Sum(nil)))
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
	// The disk is streamed: fixture guests are hundreds of MiB.
	if err := tw.WriteHeader(&tar.Header{Name: base, Size: size, Mode: 0o644, Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	if _, err := df.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if _, err := io.Copy(tw, df); err != nil {
		return err
	}
	return tw.Close()
}
