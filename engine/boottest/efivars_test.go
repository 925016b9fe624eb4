package boottest

import (
	"bytes"
	"encoding/binary"
	"os"
	"testing"

	"github.com/vmconv/terraform-provider-vmconv/engine/internal/guid"
)

func TestAddBootEntry(t *testing.T) {
	tmpl, err := os.ReadFile("/usr/share/OVMF/OVMF_VARS_4M.fd")
	if err != nil {
		t.Fatalf("OVMF is required (tools/setup installs ovmf): %v", err)
	}
	esp := ESP{Number: 1, StartLBA: 2048, SizeLBA: 204800, GUID: "6A3B1C2D-0000-4000-8000-0000000000E1"}
	out, err := AddBootEntry(tmpl, "test", esp, `\EFI\debian\grubx64.efi`)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(tmpl) {
		t.Fatalf("image size changed: %d -> %d", len(tmpl), len(out))
	}
	// Walk the store as the firmware would and find both variables.
	store := int(binary.LittleEndian.Uint16(out[48:]))
	off := store + 28
	found := map[string][]byte{}
	for binary.LittleEndian.Uint16(out[off:]) == 0x55aa {
		if out[off+2] != 0x3f {
			t.Fatalf("variable state %#x", out[off+2])
		}
		ns := int(binary.LittleEndian.Uint32(out[off+36:]))
		ds := int(binary.LittleEndian.Uint32(out[off+40:]))
		if !bytes.Equal(out[off+44:off+60], globalVarGUID) {
			t.Fatal("wrong vendor GUID")
		}
		name := out[off+60 : off+60+ns]
		found[string(name)] = out[off+60+ns : off+60+ns+ds]
		off = (off + 60 + ns + ds + 3) &^ 3
	}
	boot, ok := found[string(ucs2z("Boot0000"))]
	if !ok {
		t.Fatal("no Boot0000")
	}
	if !bytes.Contains(boot, ucs2z(`\EFI\debian\grubx64.efi`)) || !bytes.Contains(boot, guid.Must(esp.GUID)) {
		t.Error("Boot0000 lacks the loader path or the partition GUID")
	}
	if order := found[string(ucs2z("BootOrder"))]; !bytes.Equal(order, []byte{0, 0}) {
		t.Errorf("BootOrder %v", order)
	}
	if _, err := AddBootEntry(out, "again", esp, `\x.efi`); err == nil {
		t.Error("a second Boot0000 was accepted")
	}
	if _, err := AddBootEntry(make([]byte, 4096), "x", esp, `\x.efi`); err == nil {
		t.Error("a non-firmware-volume was accepted")
	}
}
