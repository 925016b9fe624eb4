package kvm

import (
	"encoding/binary"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// qemuUser is libvirt-qemu as Debian makes it: its label's group, and kvm
// as a supplementary group.
var qemuUser = Identity{UID: 64055, GID: 64055, Groups: []int{64055, 107}, Name: "libvirt-qemu"}

func dir(mode fs.FileMode, uid, gid int, acl ...ACLEntry) Perm {
	return Perm{Mode: fs.ModeDir | mode, UID: uid, GID: gid, ACL: acl}
}

func TestReach(t *testing.T) {
	root := dir(0o755, 0, 0)
	for _, tc := range []struct {
		name      string
		tree      map[string]Perm
		target    string
		read, dir bool
		blocked   string // "" when the user gets through
		need      string
	}{
		{"open folders", map[string]Perm{"/": root, "/data": root, "/data/vm": root}, "/data/vm/web.qcow2", false, false, "", ""},
		{"a 0700 parent", map[string]Perm{"/": root, "/data": dir(0o700, 0, 0), "/data/vm": root}, "/data/vm/web.qcow2", false, false, "/data", "search"},
		{"listing without search is not enough", map[string]Perm{"/": root, "/data": dir(0o754, 0, 0), "/data/vm": root}, "/data/vm/web.qcow2", false, false, "/data", "search"},
		{"search without listing is enough", map[string]Perm{"/": root, "/data": dir(0o711, 0, 0), "/data/vm": root}, "/data/vm/web.qcow2", false, false, "", ""},
		{"group kvm may search", map[string]Perm{"/": root, "/data": dir(0o750, 0, 107), "/data/vm": root}, "/data/vm/web.qcow2", false, false, "", ""},
		// Another group's class decides for its members, even where other
		// would allow: the kernel looks no further.
		{"group class denies before other", map[string]Perm{"/": root, "/data": dir(0o705, 0, 64055), "/data/vm": root}, "/data/vm/web.qcow2", false, false, "/data", "search"},
		{"owned by the QEMU user", map[string]Perm{"/": root, "/data": dir(0o700, 64055, 0), "/data/vm": root}, "/data/vm/web.qcow2", false, false, "", ""},
		{"the owner class denies its owner", map[string]Perm{"/": root, "/data": dir(0o077, 64055, 0), "/data/vm": root}, "/data/vm/web.qcow2", false, false, "/data", "search"},
		{"a folder reached as the target", map[string]Perm{"/": root, "/data": root, "/data/out": dir(0o700, 0, 0)}, "/data/out", false, true, "/data/out", "search"},
		{"an unreadable file", map[string]Perm{"/": root, "/data": root, "/data/web.qcow2": {Mode: 0o600}}, "/data/web.qcow2", true, false, "/data/web.qcow2", "read"},
		{"a readable file", map[string]Perm{"/": root, "/data": root, "/data/web.qcow2": {Mode: 0o644}}, "/data/web.qcow2", true, false, "", ""},
		{"the file unchecked without read", map[string]Perm{"/": root, "/data": root}, "/data/web.qcow2", false, false, "", ""},
		{"ACL: the QEMU user named", map[string]Perm{"/": root, "/data": dir(0o750, 0, 0,
			ACLEntry{aclUserObj, 7, 0}, ACLEntry{aclUser, 1, 64055}, ACLEntry{aclGroupObj, 5, 0}, ACLEntry{aclMask, 5, 0}, ACLEntry{aclOther, 0, 0})}, "/data/x", false, false, "", ""},
		{"ACL: the mask takes it away", map[string]Perm{"/": root, "/data": dir(0o740, 0, 0,
			ACLEntry{aclUserObj, 7, 0}, ACLEntry{aclUser, 1, 64055}, ACLEntry{aclGroupObj, 4, 0}, ACLEntry{aclMask, 4, 0}, ACLEntry{aclOther, 0, 0})}, "/data/x", false, false, "/data", "search"},
		{"ACL: a named group", map[string]Perm{"/": root, "/data": dir(0o750, 0, 0,
			ACLEntry{aclUserObj, 7, 0}, ACLEntry{aclGroupObj, 0, 0}, ACLEntry{aclGroup, 1, 107}, ACLEntry{aclMask, 1, 0}, ACLEntry{aclOther, 0, 0})}, "/data/x", false, false, "", ""},
		{"ACL: others", map[string]Perm{"/": root, "/data": dir(0o701, 0, 0,
			ACLEntry{aclUserObj, 7, 0}, ACLEntry{aclUser, 7, 1000}, ACLEntry{aclGroupObj, 0, 0}, ACLEntry{aclMask, 7, 0}, ACLEntry{aclOther, 1, 0})}, "/data/x", false, false, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stat := func(p string) (Perm, error) {
				if pm, ok := tc.tree[p]; ok {
					return pm, nil
				}
				return Perm{}, &fs.PathError{Op: "stat", Path: p, Err: fs.ErrNotExist}
			}
			b, err := Reach(tc.target, qemuUser, tc.read, tc.dir, stat)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tc.blocked == "" && b != nil:
				t.Errorf("blocked at %s (%s), want through", b.Path, b.Need)
			case tc.blocked != "" && b == nil:
				t.Errorf("got through, want blocked at %s", tc.blocked)
			case b != nil && (b.Path != tc.blocked || b.Need != tc.need):
				t.Errorf("blocked at %s (%s), want %s (%s)", b.Path, b.Need, tc.blocked, tc.need)
			}
		})
	}
}

func TestDACLabel(t *testing.T) {
	const caps = `<capabilities><host><uuid>x</uuid>
    <secmodel><model>none</model><doi>0</doi></secmodel>
    <secmodel><model>dac</model><doi>0</doi>
      <baselabel type='kvm'>+64055:+64055</baselabel>
      <baselabel type='qemu'>+107:+108</baselabel>
    </secmodel></host></capabilities>`
	for _, tc := range []struct {
		caps, virtType string
		uid, gid       int
		ok             bool
	}{
		{caps, "kvm", 64055, 64055, true},
		{caps, "qemu", 107, 108, true},
		{caps, "xen", 0, 0, false},
		{`<capabilities><host><secmodel><model>selinux</model></secmodel></host></capabilities>`, "kvm", 0, 0, false},
		{`<capabilities><host><secmodel><model>dac</model><baselabel type='qemu'>root:root</baselabel></secmodel></host></capabilities>`, "qemu", 0, 0, true},
	} {
		t.Run(tc.virtType, func(t *testing.T) {
			uid, gid, ok, err := DACLabel(tc.caps, tc.virtType)
			if err != nil || ok != tc.ok || uid != tc.uid || gid != tc.gid {
				t.Errorf("DACLabel = %d:%d ok=%v err=%v, want %d:%d ok=%v", uid, gid, ok, err, tc.uid, tc.gid, tc.ok)
			}
		})
	}
}

func TestParseACL(t *testing.T) {
	b := binary.LittleEndian.AppendUint32(nil, 2)
	for _, e := range []ACLEntry{{aclUserObj, 7, 0xffffffff}, {aclUser, 1, 64055}, {aclMask, 5, 0xffffffff}} {
		b = binary.LittleEndian.AppendUint16(b, e.Tag)
		b = binary.LittleEndian.AppendUint16(b, e.Perm)
		b = binary.LittleEndian.AppendUint32(b, e.ID)
	}
	es, err := ParseACL(b)
	if err != nil || len(es) != 3 || es[1] != (ACLEntry{aclUser, 1, 64055}) {
		t.Fatalf("ParseACL = %v, %v", es, err)
	}
	if _, err := ParseACL(b[:7]); err == nil {
		t.Error("a truncated ACL parsed")
	}
}

// The real boundary: StatPerm reads what the kernel enforces, ACL
// included (setfacl, from the acl package, when it is installed).
func TestStatPerm(t *testing.T) {
	d := filepath.Join(t.TempDir(), "d")
	if err := os.Mkdir(d, 0o700); err != nil {
		t.Fatal(err)
	}
	os.Chmod(d, 0o710)
	p, err := StatPerm(d)
	if err != nil || p.Mode.Perm() != 0o710 || !p.Mode.IsDir() || p.UID != os.Getuid() || p.ACL != nil {
		t.Fatalf("StatPerm = %+v, %v", p, err)
	}
	if _, err := exec.LookPath("setfacl"); err != nil {
		t.Skip("setfacl is not installed")
	}
	if out, err := exec.Command("setfacl", "-m", "u:64055:x", d).CombinedOutput(); err != nil {
		t.Skipf("setfacl: %v: %s", err, out)
	}
	if p, err = StatPerm(d); err != nil {
		t.Fatal(err)
	}
	var named bool
	for _, e := range p.ACL {
		named = named || (e.Tag == aclUser && e.ID == 64055 && e.Perm == 1)
	}
	if !named || !p.allows(qemuUser, wantSearch) {
		t.Errorf("ACL %+v does not let uid 64055 search", p.ACL)
	}
}

func TestBackingChain(t *testing.T) {
	d := t.TempDir()
	run := func(args ...string) {
		if out, err := exec.Command("qemu-img", args...).CombinedOutput(); err != nil {
			t.Fatalf("qemu-img %v: %v: %s", args, err, out)
		}
	}
	os.Mkdir(filepath.Join(d, "base"), 0o755)
	run("create", "-q", "-f", "qcow2", filepath.Join(d, "base", "a.qcow2"), "1M")
	run("create", "-q", "-f", "qcow2", "-b", "base/a.qcow2", "-F", "qcow2", filepath.Join(d, "b.qcow2"))
	run("create", "-q", "-f", "qcow2", "-b", filepath.Join(d, "b.qcow2"), "-F", "qcow2", filepath.Join(d, "c.qcow2"))
	got := BackingChain(filepath.Join(d, "c.qcow2"))
	want := []string{filepath.Join(d, "b.qcow2"), filepath.Join(d, "base", "a.qcow2")}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("BackingChain = %v, want %v", got, want)
	}
	if got := BackingChain(filepath.Join(d, "base", "a.qcow2")); len(got) != 0 {
		t.Errorf("a standalone image has a chain: %v", got)
	}
}
