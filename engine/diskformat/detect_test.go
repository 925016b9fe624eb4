package diskformat

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
)

func TestDetectByContent(t *testing.T) {
	sector := func(fill func(b []byte)) []byte {
		b := make([]byte, 72*1024)
		fill(b)
		return b
	}
	cases := []struct {
		name string
		data []byte
		want Format
		kind Kind
		ok   bool
	}{
		{"qcow2", sector(func(b []byte) { copy(b, "QFI\xfb") }), QCOW2, KindWhole, true},
		{"vmdk sparse", sector(func(b []byte) { copy(b, "KDMV") }), VMDK, KindHostedSparse, true},
		{"vmdk delta", sector(func(b []byte) { copy(b, "COWD") }), VMDK, KindCOWD, true},
		{"sesparse", sector(func(b []byte) { binary.LittleEndian.PutUint64(b, 0xcafebabe) }), VMDK, KindSESparse, true},
		{"vhdx", sector(func(b []byte) { copy(b, "vhdxfile") }), VHDX, KindWhole, true},
		{"vdi", sector(func(b []byte) { binary.LittleEndian.PutUint32(b[0x40:], 0xbeda107f) }), VDI, KindWhole, true},
		{"vhd dynamic", sector(func(b []byte) { copy(b, "conectix") }), VHD, KindWhole, true},
		{"vhd fixed (footer only)", sector(func(b []byte) { copy(b[len(b)-512:], "conectix") }), VHD, KindWhole, true},
		{"descriptor", []byte("# Disk DescriptorFile\nversion=1\nCID=1\n"), VMDK, KindDescriptor, true},
		{"mbr disk", sector(func(b []byte) { b[510], b[511] = 0x55, 0xaa }), Raw, KindWhole, true},
		{"gpt disk", sector(func(b []byte) { copy(b[512:], "EFI PART") }), Raw, KindWhole, true},
		{"ext4 partition image", sector(func(b []byte) { binary.LittleEndian.PutUint16(b[1080:], 0xef53) }), Raw, KindWhole, true},
		{"lvm pv", sector(func(b []byte) { copy(b[512:], "LABELONE") }), Raw, KindWhole, true},
		{"zeros", make([]byte, 1<<20), "", "", false},
		{"vmx config", []byte(".encoding = \"UTF-8\"\nconfig.version = \"8\"\n"), "", "", false},
		{"named .vmdk but qcow2", sector(func(b []byte) { copy(b, "QFI\xfb") }), QCOW2, KindWhole, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "disk.vmdk")
			os.WriteFile(p, c.data, 0o644)
			f, _ := os.Open(p)
			defer f.Close()
			d, ok, err := Detect(f)
			if err != nil {
				t.Fatal(err)
			}
			if ok != c.ok || d.Format != c.want || (c.ok && d.Kind != c.kind) {
				t.Fatalf("got %+v %v, want %s/%s %v", d, ok, c.want, c.kind, c.ok)
			}
		})
	}
}
