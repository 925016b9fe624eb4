package virtio

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/internal/wintest"
)

// The same tree, unpacked and as an ISO, gives the same drivers.
func TestFindInAVirtioWinTreeAndISO(t *testing.T) {
	root := t.TempDir()
	if err := wintest.VirtioWin(root, []string{"2k19", "w10"}, []string{"amd64", "x86"}); err != nil {
		t.Fatal(err)
	}
	iso := filepath.Join(t.TempDir(), "virtio-win.iso")
	if err := wintest.ISO(root, iso); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{root, iso} {
		src, err := Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer src.Close()
		ds, err := Find(src, append(Storage, Staged...), OSDirs(10, 0, "17763", "Server"), "x86_64")
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) != 4 || ds[0].Name != "viostor" || ds[0].OSDir != "2k19" || ds[0].Arch != "amd64" || ds[0].Version != wintest.VirtioVersion ||
			ds[0].Service != "viostor" || len(ds[0].HardwareIDs) != 2 || !strings.HasPrefix(ds[0].HardwareIDs[0], `PCI\VEN_1AF4&DEV_10`) ||
			ds[0].SYS != "viostor/2k19/amd64/viostor.sys" {
			t.Errorf("%s: viostor: %+v", src.Kind, ds[0])
		}
		if ds[2].Service != "netkvm" {
			t.Errorf("%s: NetKVM service %q", src.Kind, ds[2].Service)
		}
		sys, err := src.ReadFile(ds[0].SYS)
		if err != nil || string(sys[:2]) != "MZ" {
			t.Errorf("%s: viostor.sys: %v", src.Kind, err)
		}
		files, err := src.ReadDir(ds[2].Dir)
		if err != nil || len(files) != 3 || files["netkvm.inf"] == nil {
			t.Errorf("%s: NetKVM files %v, %v", src.Kind, len(files), err)
		}
		a, msi, ok := FindAgent(src, "i686")
		if !ok || a.File != "guest-agent/qemu-ga-i386.msi" || int(a.Size) != len(msi) || len(a.SHA256) != 64 {
			t.Errorf("%s: agent %+v", src.Kind, a)
		}
	}
}

func TestOpenAndFindRefusals(t *testing.T) {
	_, err := Open("")
	if fe, ok := fault.As(err); !ok || fe.Code != fault.DriversMissing || !strings.Contains(fe.Hint, "virtio_win") {
		t.Errorf("no source: %v", err)
	}
	notISO := filepath.Join(t.TempDir(), "virtio-win.iso")
	os.WriteFile(notISO, []byte("<html>404</html>"), 0o644)
	if _, err := Open(notISO); fault.CodeOf(err) != fault.DriversMissing || !strings.Contains(err.Error(), "neither a folder nor an ISO") {
		t.Errorf("not an ISO: %v", err)
	}
	if _, err := Open(filepath.Join(t.TempDir(), "nope.iso")); fault.CodeOf(err) != fault.DriversMissing {
		t.Errorf("missing: %v", err)
	}
	root := t.TempDir()
	wintest.VirtioWin(root, []string{"2k19"}, []string{"x86"})
	src, _ := Open(root)
	_, err = Find(src, Storage, OSDirs(10, 0, "17763", "Server"), "x86_64")
	if fault.CodeOf(err) != fault.DriversMissing || !strings.Contains(err.Error(), "wrong architecture") {
		t.Errorf("wrong arch: %v", err)
	}
	if _, _, ok := FindAgent(src, "x86_64"); ok {
		t.Error("an amd64 agent found in an x86-only tree")
	}
	if got := OSDirs(10, 0, "22631", "Client"); got[0] != "w11" {
		t.Errorf("Windows 11: %v", got)
	}
	if got := OSDirs(6, 3, "9600", "Server"); got[0] != "2k12R2" {
		t.Errorf("2012 R2: %v", got)
	}
}

// A truncated ISO is refused when it is opened, with the reason.
func TestTruncatedISO(t *testing.T) {
	root := t.TempDir()
	wintest.VirtioWin(root, []string{"2k19"}, []string{"amd64"})
	iso := filepath.Join(t.TempDir(), "virtio-win.iso")
	if err := wintest.ISO(root, iso); err != nil {
		t.Fatal(err)
	}
	os.Truncate(iso, 18*2048)
	_, err := Open(iso)
	if fault.CodeOf(err) != fault.DriversMissing || !strings.Contains(err.Error(), "truncated") {
		t.Errorf("truncated: %v", err)
	}
}

// A newer virtio-win at the same path must not reuse a cached plan.
func TestIdentityFollowsContents(t *testing.T) {
	root := t.TempDir()
	wintest.VirtioWin(root, []string{"2k19"}, []string{"amd64"})
	a := Identity(root)
	if a == "" || a != Identity(root) {
		t.Fatalf("identity %q is not stable", a)
	}
	inf := filepath.Join(root, "viostor", "2k19", "amd64", "viostor.inf")
	os.WriteFile(inf, []byte("DriverVer = 01/01/2025,101.0.0.0\n"), 0o644)
	if Identity(root) == a {
		t.Error("a changed INF deep in the folder left the identity unchanged")
	}
	if Identity("") != "" || Identity(filepath.Join(root, "nope")) != "missing" {
		t.Error("no source / missing source")
	}
}
