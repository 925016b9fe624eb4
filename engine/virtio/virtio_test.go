package virtio

import (
	"strings"
	"testing"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/internal/wintest"
)

func TestFindInAVirtioWinTree(t *testing.T) {
	root := t.TempDir()
	if err := wintest.VirtioWin(root, []string{"2k19", "w10"}, []string{"amd64", "x86"}); err != nil {
		t.Fatal(err)
	}
	ds, err := Find(root, append(Storage, Staged...), OSDirs(10, 0, "17763", "Server"), "x86_64")
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 4 || ds[0].Name != "viostor" || ds[0].OSDir != "2k19" || ds[0].Arch != "amd64" || ds[0].Version != wintest.VirtioVersion ||
		ds[0].Service != "viostor" || len(ds[0].HardwareIDs) != 2 || !strings.HasPrefix(ds[0].HardwareIDs[0], `PCI\VEN_1AF4&DEV_10`) || ds[0].SYS == "" {
		t.Errorf("viostor: %+v", ds[0])
	}
	if ds[2].Service != "netkvm" {
		t.Errorf("NetKVM service %q", ds[2].Service)
	}
}

func TestFindRefusals(t *testing.T) {
	_, err := Find("", Storage, []string{"2k19"}, "x86_64")
	if fe, ok := fault.As(err); !ok || fe.Code != fault.DriversMissing || !strings.Contains(fe.Hint, "virtio_win") {
		t.Errorf("no source: %v", err)
	}
	root := t.TempDir()
	wintest.VirtioWin(root, []string{"2k19"}, []string{"x86"})
	_, err = Find(root, Storage, OSDirs(10, 0, "17763", "Server"), "x86_64")
	if fault.CodeOf(err) != fault.DriversMissing || !strings.Contains(err.Error(), "wrong architecture") {
		t.Errorf("wrong arch: %v", err)
	}
	if got := OSDirs(10, 0, "22631", "Client"); got[0] != "w11" {
		t.Errorf("Windows 11: %v", got)
	}
	if got := OSDirs(6, 3, "9600", "Server"); got[0] != "2k12R2" {
		t.Errorf("2012 R2: %v", got)
	}
}
