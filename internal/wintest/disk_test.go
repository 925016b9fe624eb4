package wintest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmconv/terraform-provider-vmconv/internal/guestfsenv"
)

// TestDiskInspectsAsWindows builds the synthetic disk and asks libguestfs'
// own inspection (virt-inspector) what it is.
func TestDiskInspectsAsWindows(t *testing.T) {
	if os.Getenv("TF_ACC") == "" {
		t.Skip("TF_ACC is not set: appliance tests run with the acceptance tests")
	}
	p := filepath.Join(t.TempDir(), "win.img")
	g := WindowsGuest{ProductName: "Windows Server 2019 Standard", Major: 10, Minor: 0, Build: "17763", Hostname: "win01", Machine: 0x8664, VMwareTools: true}
	if err := BuildDisk(p, g); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("virt-inspector", "-a", p)
	cmd.Env = guestfsenv.Env()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("virt-inspector: %v\n%s", err, out)
	}
	for _, want := range []string{"<name>windows</name>", "<arch>x86_64</arch>", "<major_version>10</major_version>",
		"<product_name>Windows Server 2019 Standard</product_name>", "<hostname>win01</hostname>", "<windows_current_control_set>ControlSet001</windows_current_control_set>"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("virt-inspector does not report %s:\n%s", want, out)
		}
	}
}
