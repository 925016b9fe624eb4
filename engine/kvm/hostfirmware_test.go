package kvm

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/vmconv/terraform-provider-vmconv/internal/libvirttest"
)

// TestHostFirmware: a UEFI domain on a remote host names no firmware file
// (the runner's paths are not the host's); the host's libvirt picks its
// own OVMF, without secure boot, and keeps the NVRAM itself. The domain is
// defined and started on a real libvirtd in its own namespace, which must
// resolve both, then removed with its NVRAM.
func TestHostFirmware(t *testing.T) {
	x, err := Spec{Name: "uefi-probe", MemoryMiB: 128, VCPUs: 1, Type: "qemu", Firmware: "uefi", HostFirmware: true}.XML()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(x, "<loader") || strings.Contains(x, "<nvram") || !strings.Contains(x, `<os firmware="efi">`) ||
		!strings.Contains(x, `<feature enabled="no" name="secure-boot">`) {
		t.Fatalf("the definition names firmware files, or lets the host choose secure boot:\n%s", x)
	}
	h := libvirttest.Start(t)
	def := filepath.Join(t.TempDir(), "uefi.xml")
	if err := os.WriteFile(def, []byte(x), 0o644); err != nil {
		t.Fatal(err)
	}
	h.Virsh(t, "define", def)
	defer h.Virsh(t, "undefine", "--nvram", "uefi-probe")
	h.Virsh(t, "start", "uefi-probe")
	live := h.Virsh(t, "dumpxml", "uefi-probe")
	h.Virsh(t, "destroy", "uefi-probe")
	loader := regexp.MustCompile(`<loader [^>]*>([^<]+)</loader>`).FindStringSubmatch(live)
	nvram := regexp.MustCompile(`<nvram[^>]*>([^<]+)</nvram>`).FindStringSubmatch(live)
	if loader == nil || nvram == nil {
		t.Fatalf("the host's libvirt resolved no firmware:\n%s", live)
	}
	if strings.Contains(loader[1], "secboot") || strings.Contains(loader[1], ".ms.") {
		t.Errorf("the host chose secure-boot firmware %s", loader[1])
	}
	if _, err := h.Exec(t, "test", "-f", nvram[1]); err != nil {
		t.Errorf("the domain's NVRAM %s is not on the host: %v", nvram[1], err)
	}
}
