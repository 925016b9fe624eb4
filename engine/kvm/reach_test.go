package kvm

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmconv/terraform-provider-vmconv/engine/boottest"
	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
)

func TestLocalSystemURI(t *testing.T) {
	for _, tc := range []struct {
		uri  string
		want bool
	}{
		{"qemu:///system", true},
		{"qemu+unix:///system?socket=/run/libvirt/libvirt-sock", true},
		{"qemu:///session", false},
		{"qemu+ssh://root@kvm1/system", false},
		{"qemu+tcp://kvm1/system", false},
		{"qemu://kvm1/system", false},
		{"test:///default", false},
	} {
		t.Run(tc.uri, func(t *testing.T) {
			if got := localSystemURI(tc.uri); got != tc.want {
				t.Errorf("localSystemURI(%q) = %v", tc.uri, got)
			}
		})
	}
}

func TestDynamicOwnership(t *testing.T) {
	for _, tc := range []struct {
		name, conf string
		want       bool
	}{
		{"default", "# dynamic_ownership = 1\n#user = \"root\"\n", true},
		{"off", "dynamic_ownership = 0\n", false},
		{"on", "  dynamic_ownership=1\n", true},
		{"the last one wins", "dynamic_ownership = 0\ndynamic_ownership = 1\n", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := dynamicOwnership(tc.conf); got != tc.want {
				t.Errorf("dynamicOwnership = %v, want %v", got, tc.want)
			}
		})
	}
}

// checkReach on real folders and files, stat'ed for real, for a QEMU user
// that is not the test's (libvirt-qemu's uid, whether or not this host has
// it): the tests run as root, so only the walk can tell.
func TestCheckReach(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to make folders another user cannot enter")
	}
	qemu := Identity{UID: 64055, GID: 64055, Groups: []int{64055}, Name: "libvirt-qemu"}
	base := t.TempDir()
	// t.TempDir's own parent is 0700: it would block every case.
	os.Chmod(filepath.Dir(base), 0o755)
	os.Chmod(base, 0o755)
	mk := func(p string, mode os.FileMode) string {
		p = filepath.Join(base, p)
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, mode)
		return p
	}
	img := func(p string, backing string) string {
		args := []string{"create", "-q", "-f", "qcow2"}
		if backing != "" {
			args = append(args, "-b", backing, "-F", "qcow2")
		}
		if out, err := exec.Command("qemu-img", append(args, p, "1M")...).CombinedOutput(); err != nil {
			t.Fatalf("qemu-img: %v: %s", err, out)
		}
		os.Chmod(p, 0o600) // libvirt hands files over itself: not a blocker
		return p
	}
	open, closed := mk("open", 0o755), mk("closed", 0o700)
	mk("open/domains", 0o755)
	inClosed := mk("closed/inner", 0o755)
	openDisk := img(filepath.Join(open, "web.qcow2"), "")
	closedDisk := img(filepath.Join(inClosed, "web.qcow2"), "")
	overlay := img(filepath.Join(open, "overlay.qcow2"), closedDisk)
	link := filepath.Join(open, "link")
	os.Symlink(inClosed, link)
	for _, tc := range []struct {
		name      string
		disk      string
		domainDir string
		readFiles bool
		blocked   string // "" when QEMU gets through
		says      []string
	}{
		{"an open disk, 0600", openDisk, filepath.Join(open, "domains"), false, "", nil},
		{"a disk under a 0700 folder", closedDisk, filepath.Join(open, "domains"), false, closed,
			[]string{"disk 0 (" + closedDisk + ")", "folder " + closed + " (drwx------, owner root:", "does not let it search", "chmod o+x " + closed, "setfacl -m u:libvirt-qemu:x " + closed}},
		{"a disk not written yet, in a 0700 folder", filepath.Join(closed, "new.qcow2"), filepath.Join(open, "domains"), false, closed,
			[]string{"which does not exist yet"}},
		{"a backing image under a 0700 folder", overlay, filepath.Join(open, "domains"), false, closed,
			[]string{"the backing image " + closedDisk + " of disk 0"}},
		{"a symbolic link into a 0700 folder", filepath.Join(link, "web.qcow2"), filepath.Join(open, "domains"), false, closed, nil},
		{"the domain's folder under a 0700 folder", openDisk, filepath.Join(closed, "domains"), false, closed,
			[]string{"the domain's folder", "domain_dir"}},
		{"an unreadable file without dynamic_ownership", openDisk, filepath.Join(open, "domains"), true, openDisk,
			[]string{"does not let it read", "chmod o+r " + openDisk, "dynamic_ownership is off"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := Request{Name: "d", Disks: []DiskRequest{{Source: tc.disk}}}
			err := checkReach(req, tc.domainDir, qemu, tc.readFiles, StatPerm)
			if tc.blocked == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			fe, ok := fault.As(err)
			if !ok || fe.Code != fault.DiskUnreachable {
				t.Fatalf("want a disk_unreachable fault, got %v", err)
			}
			text := fe.Error() + "\n" + fe.Hint
			for _, f := range fe.Facts {
				text += "\n" + f.Label + ": " + f.Value
			}
			for _, want := range append(tc.says, "Blocked at: "+tc.blocked, "libvirt-qemu (uid 64055", "does not change permissions") {
				if !strings.Contains(text, want) {
					t.Errorf("the diagnostic does not say %q:\n%s", want, text)
				}
			}
		})
	}
}

// A boot test that requires a network on a domain without a network
// interface could only fail after the whole boot: the plan refuses it.
func TestCheckBootNetwork(t *testing.T) {
	base := Request{Name: "d", Running: true, BootTest: boottest.Spec{Enabled: true}}
	base.BootTest.RequireNetwork = true
	for _, tc := range []struct {
		name    string
		mut     func(*Request)
		refused bool
	}{
		{"no NIC, network required", func(*Request) {}, true},
		{"no NIC, network not required", func(r *Request) { r.BootTest.RequireNetwork = false }, false},
		{"a NIC", func(r *Request) { r.NICs = []NIC{{User: true}} }, false},
		{"no boot test", func(r *Request) { r.BootTest.Enabled = false }, false},
		{"not started", func(r *Request) { r.Running = false }, false},
		{"a success pattern, which ignores the network", func(r *Request) { r.BootTest.SuccessPattern = "login:" }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := base
			tc.mut(&r)
			err := checkBootNetwork(r)
			if !tc.refused {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			fe, ok := fault.As(err)
			if !ok || fe.Code != fault.BootTestImpossible || !strings.Contains(fe.Msg, "no network interface") || !strings.Contains(fe.Hint, "require_network = false") {
				t.Errorf("got %v", err)
			}
		})
	}
}
