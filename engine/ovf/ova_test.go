package ovf

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
)

// testOVF is shaped like what vSphere exports: a UEFI VM with 2 vCPUs,
// 2 GiB, one vmxnet3 NIC with its MAC, one disk.
const testOVF = `<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"
  xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"
  xmlns:vmw="http://www.vmware.com/schema/ovf" xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData">
  <References>
    <File ovf:id="file1" ovf:href="%s" ovf:size="4096"/>
  </References>
  <DiskSection>
    <Info>Virtual disk information</Info>
    <Disk ovf:capacity="16" ovf:capacityAllocationUnits="byte * 2^30" ovf:diskId="vmdisk1" ovf:fileRef="file1"
      ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>
  </DiskSection>
  <NetworkSection><Info>Networks</Info><Network ovf:name="VM Network"><Description>net</Description></Network></NetworkSection>
  <VirtualSystem ovf:id="web01">
    <Info>A virtual machine</Info>
    <Name>web01</Name>
    <OperatingSystemSection ovf:id="96" vmw:osType="debian12_64Guest"><Info>OS</Info></OperatingSystemSection>
    <VirtualHardwareSection>
      <Info>Virtual hardware requirements</Info>
      <Item><rasd:AllocationUnits>hertz * 10^6</rasd:AllocationUnits><rasd:ElementName>2 virtual CPU(s)</rasd:ElementName><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>2</rasd:VirtualQuantity></Item>
      <Item><rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits><rasd:ElementName>2048MB of memory</rasd:ElementName><rasd:InstanceID>2</rasd:InstanceID><rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>2048</rasd:VirtualQuantity></Item>
      <Item><rasd:Address>00:50:56:8A:3C:1E</rasd:Address><rasd:Connection>VM Network</rasd:Connection><rasd:ElementName>Network adapter 1</rasd:ElementName><rasd:InstanceID>3</rasd:InstanceID><rasd:ResourceSubType>VmxNet3</rasd:ResourceSubType><rasd:ResourceType>10</rasd:ResourceType></Item>
      <vmw:Config ovf:required="false" vmw:key="firmware" vmw:value="efi"/>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
`

type member struct {
	name, link string
	typ        byte
	body       []byte
}

func writeOVA(t *testing.T, members ...member) string {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, m := range members {
		typ := m.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		h := &tar.Header{Name: m.name, Linkname: m.link, Typeflag: typ, Mode: 0o644}
		if typ == tar.TypeReg {
			h.Size = int64(len(m.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write(m.body)
	}
	tw.Close()
	p := filepath.Join(t.TempDir(), "web01.ova")
	os.WriteFile(p, buf.Bytes(), 0o644)
	return p
}

func sha(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }

var disk = bytes.Repeat([]byte("KDMV"), 1024)

func goodMembers() []member {
	ovfText := []byte(fmt.Sprintf(testOVF, "web01-disk1.vmdk"))
	mf := fmt.Sprintf("SHA256(web01.ovf)= %s\nSHA256(web01-disk1.vmdk)= %s\n", sha(ovfText), sha(disk))
	return []member{{name: "web01.ovf", body: ovfText}, {name: "web01.mf", body: []byte(mf)}, {name: "web01-disk1.vmdk", body: disk}}
}

func TestParseOVF(t *testing.T) {
	o, err := ParseOVF(strings.NewReader(fmt.Sprintf(testOVF, "d.vmdk")), "web01.ovf")
	if err != nil {
		t.Fatal(err)
	}
	if o.Name != "web01" || o.CPUs != 2 || o.MemoryMiB != 2048 || o.Firmware != "uefi" || o.OSType != "debian12_64Guest" {
		t.Errorf("parsed %s", o)
	}
	if len(o.Disks) != 1 || o.Disks[0].File != "d.vmdk" || o.Disks[0].Capacity != 16<<30 || !strings.HasSuffix(o.Disks[0].Format, "streamOptimized") {
		t.Errorf("disks %+v", o.Disks)
	}
	if len(o.NICs) != 1 || o.NICs[0] != (OVFNIC{Network: "VM Network", Model: "vmxnet3", MAC: "00:50:56:8a:3c:1e"}) {
		t.Errorf("nics %+v", o.NICs)
	}
}

func TestExtractOVA(t *testing.T) {
	dir := t.TempDir()
	o, err := ExtractOVA(context.Background(), writeOVA(t, goodMembers()...), dir)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(o.Disks[0])
	if !bytes.Equal(got, disk) || len(o.Verified) != 2 {
		t.Errorf("extracted %d bytes, verified %v", len(got), o.Verified)
	}
	// Only the disk is written.
	if es, _ := os.ReadDir(dir); len(es) != 1 {
		t.Errorf("%d files extracted, want 1", len(es))
	}
}

func TestExtractOVARefusesHostileArchives(t *testing.T) {
	g := goodMembers()
	ovfFor := func(href string) member { return member{name: "web01.ovf", body: []byte(fmt.Sprintf(testOVF, href))} }
	cases := map[string]struct {
		members []member
		code    fault.Code
		want    string
	}{
		"dot-dot path":       {[]member{g[0], {name: "../../etc/cron.d/x", body: []byte("x")}}, fault.HostileArchive, "climbs out"},
		"absolute path":      {[]member{g[0], {name: "/etc/passwd", body: []byte("x")}}, fault.HostileArchive, "absolute path"},
		"nested folder":      {[]member{g[0], {name: "a/b.vmdk", body: []byte("x")}}, fault.HostileArchive, "in a folder"},
		"symlink":            {[]member{g[0], {name: "web01-disk1.vmdk", typ: tar.TypeSymlink, link: "/dev/sda"}}, fault.HostileArchive, "is a link"},
		"hard link":          {[]member{g[0], {name: "web01-disk1.vmdk", typ: tar.TypeLink, link: "web01.ovf"}}, fault.HostileArchive, "is a link"},
		"duplicate":          {[]member{g[0], g[2], g[2]}, fault.HostileArchive, "appears twice"},
		"missing disk":       {[]member{g[0], g[1]}, fault.HostileArchive, "does not hold"},
		"ovf names ../ disk": {[]member{ovfFor("../x.vmdk"), g[2]}, fault.HostileArchive, "outside the archive"},
		"manifest mismatch":  {[]member{g[0], g[1], {name: "web01-disk1.vmdk", body: append([]byte("X"), disk[1:]...)}}, fault.ChecksumMismatch, "the manifest says"},
		"no ovf":             {[]member{g[2]}, fault.UnsupportedFormat, "no .ovf"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			_, err := ExtractOVA(context.Background(), writeOVA(t, tc.members...), dir)
			if fault.CodeOf(err) != tc.code || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %s containing %q", err, tc.code, tc.want)
			}
			if es, _ := os.ReadDir(dir); len(es) != 0 {
				t.Errorf("a refused archive left %d files", len(es))
			}
		})
	}
}

func TestExtractOVATruncated(t *testing.T) {
	p := writeOVA(t, goodMembers()...)
	b, _ := os.ReadFile(p)
	os.WriteFile(p, b[:len(b)-len(disk)/2-1024], 0o644)
	_, err := ExtractOVA(context.Background(), p, t.TempDir())
	if fault.CodeOf(err) != fault.TruncatedImage {
		t.Fatalf("error %v", err)
	}
}

func FuzzParseOVF(f *testing.F) {
	f.Add([]byte(fmt.Sprintf(testOVF, "d.vmdk")))
	f.Add([]byte(`<Envelope><VirtualSystem ovf:id="x"/></Envelope>`))
	f.Add([]byte(`<Envelope><References><File ovf:id="a" ovf:href="../x"/></References><DiskSection><Disk ovf:fileRef="a" ovf:capacity="1"/></DiskSection><VirtualSystem/></Envelope>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := ParseOVF(bytes.NewReader(b), "fuzz.ovf")
		if err != nil {
			if fault.CodeOf(err) == fault.Internal {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		if len(o.Disks) == 0 || o.Firmware == "" {
			t.Fatalf("accepted an OVF with no disk or no firmware: %+v", o)
		}
	})
}
