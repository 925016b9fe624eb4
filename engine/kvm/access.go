package kvm

import (
	"encoding/binary"
	"encoding/xml"
	"fmt"
	"io/fs"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Identity is the user QEMU runs as under libvirt: the user and group of
// libvirt's DAC label, and the user's supplementary groups, as libvirt
// gives them to QEMU (initgroups).
type Identity struct {
	UID, GID int
	Groups   []int // every group the process has, GID included
	Name     string
}

func (id Identity) String() string {
	var gs []string
	for _, g := range id.Groups {
		gs = append(gs, groupName(g))
	}
	name := id.Name
	if name == "" {
		name = "uid " + strconv.Itoa(id.UID)
	}
	return fmt.Sprintf("%s (uid %d, gid %d, groups %s)", name, id.UID, id.GID, strings.Join(gs, ", "))
}

func (id Identity) inGroup(g int) bool {
	for _, x := range id.Groups {
		if x == g {
			return true
		}
	}
	return false
}

// DACLabel reads the user and group libvirt runs QEMU as from its
// capabilities XML (<secmodel><model>dac</model><baselabel type='kvm'>
// +64055:+64055</baselabel>), for the domain type virtType (kvm or qemu).
// ok is false when libvirt has no DAC label for that type (a session
// connection, or the DAC driver off).
func DACLabel(capsXML, virtType string) (uid, gid int, ok bool, err error) {
	var caps struct {
		SecModels []struct {
			Model      string `xml:"model"`
			BaseLabels []struct {
				Type  string `xml:"type,attr"`
				Label string `xml:",chardata"`
			} `xml:"baselabel"`
		} `xml:"host>secmodel"`
	}
	if err := xml.Unmarshal([]byte(capsXML), &caps); err != nil {
		return 0, 0, false, fmt.Errorf("libvirt's capabilities do not parse: %w", err)
	}
	for _, m := range caps.SecModels {
		if m.Model != "dac" {
			continue
		}
		for _, b := range m.BaseLabels {
			if b.Type != virtType {
				continue
			}
			u, g, found := strings.Cut(strings.TrimSpace(b.Label), ":")
			if !found {
				return 0, 0, false, fmt.Errorf("libvirt's DAC label %q is not user:group", b.Label)
			}
			if uid, err = labelID(u, false); err != nil {
				return 0, 0, false, err
			}
			if gid, err = labelID(g, true); err != nil {
				return 0, 0, false, err
			}
			return uid, gid, true, nil
		}
	}
	return 0, 0, false, nil
}

// labelID reads one half of a DAC label: +N is a number, anything else a
// name.
func labelID(s string, group bool) (int, error) {
	if n, ok := strings.CutPrefix(s, "+"); ok {
		return strconv.Atoi(n)
	}
	if n, err := strconv.Atoi(s); err == nil {
		return n, nil
	}
	id := ""
	if group {
		g, err := user.LookupGroup(s)
		if err != nil {
			return 0, err
		}
		id = g.Gid
	} else {
		u, err := user.Lookup(s)
		if err != nil {
			return 0, err
		}
		id = u.Uid
	}
	return strconv.Atoi(id)
}

// LookupIdentity completes a DAC label with the user's name and
// supplementary groups from the host's user database. A uid without an
// entry has only its label's group, as libvirt gives it.
func LookupIdentity(uid, gid int) Identity {
	id := Identity{UID: uid, GID: gid, Groups: []int{gid}}
	u, err := user.LookupId(strconv.Itoa(uid))
	if err != nil {
		return id
	}
	id.Name = u.Username
	gs, _ := u.GroupIds()
	for _, g := range gs {
		if n, err := strconv.Atoi(g); err == nil && !id.inGroup(n) {
			id.Groups = append(id.Groups, n)
		}
	}
	sort.Ints(id.Groups[1:])
	return id
}

func groupName(gid int) string {
	if g, err := user.LookupGroupId(strconv.Itoa(gid)); err == nil {
		return fmt.Sprintf("%s(%d)", g.Name, gid)
	}
	return strconv.Itoa(gid)
}

func userName(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return u.Username
	}
	return strconv.Itoa(uid)
}

// Perm is what the walk needs to know about one path.
type Perm struct {
	Mode     fs.FileMode
	UID, GID int
	// ACL is the POSIX access ACL (system.posix_acl_access), nil when the
	// path has none.
	ACL []ACLEntry
}

// Owner renders the owner as user:group.
func (p Perm) Owner() string {
	g := strconv.Itoa(p.GID)
	if gr, err := user.LookupGroupId(g); err == nil {
		g = gr.Name
	}
	return userName(p.UID) + ":" + g
}

// ACLEntry is one entry of a POSIX ACL.
type ACLEntry struct {
	Tag  uint16
	Perm uint16
	ID   uint32
}

// POSIX ACL tags, as the kernel stores them.
const (
	aclUserObj  = 0x01
	aclUser     = 0x02
	aclGroupObj = 0x04
	aclGroup    = 0x08
	aclMask     = 0x10
	aclOther    = 0x20
)

// ParseACL decodes the kernel's system.posix_acl_access value: a version
// (2) and entries of tag, permissions and id, little-endian.
func ParseACL(b []byte) ([]ACLEntry, error) {
	if len(b) < 4 || binary.LittleEndian.Uint32(b) != 2 || (len(b)-4)%8 != 0 {
		return nil, fmt.Errorf("not a version 2 POSIX ACL (%d bytes)", len(b))
	}
	var es []ACLEntry
	for b = b[4:]; len(b) > 0; b = b[8:] {
		es = append(es, ACLEntry{Tag: binary.LittleEndian.Uint16(b), Perm: binary.LittleEndian.Uint16(b[2:]), ID: binary.LittleEndian.Uint32(b[4:])})
	}
	return es, nil
}

// Permission bits asked for.
const (
	wantSearch = 1
	wantRead   = 4
)

// allows reports whether id may have want on p, as the kernel decides it
// (acl(5), "access check algorithm"): the owner class if id owns it, else
// a named-user entry, else the group class if any of id's groups matches
// (granted only if a matching entry grants it), else other.
func (p Perm) allows(id Identity, want uint16) bool {
	mode := uint16(p.Mode.Perm())
	if p.UID == id.UID {
		return mode>>6&want == want
	}
	if p.ACL == nil {
		if id.inGroup(p.GID) {
			return mode>>3&want == want
		}
		return mode&want == want
	}
	mask := uint16(7)
	for _, e := range p.ACL {
		if e.Tag == aclMask {
			mask = e.Perm
		}
	}
	for _, e := range p.ACL {
		if e.Tag == aclUser && int(e.ID) == id.UID {
			return e.Perm&mask&want == want
		}
	}
	matched := false
	for _, e := range p.ACL {
		if (e.Tag == aclGroupObj && id.inGroup(p.GID)) || (e.Tag == aclGroup && id.inGroup(int(e.ID))) {
			matched = true
			if e.Perm&mask&want == want {
				return true
			}
		}
	}
	if matched {
		return false
	}
	for _, e := range p.ACL {
		if e.Tag == aclOther {
			return e.Perm&want == want
		}
	}
	return mode&want == want
}

// Blocked is the path that stops a user on the way to a file.
type Blocked struct {
	Path string
	Perm Perm
	// Need is what the user lacks there: "search" on a folder, "read" on
	// the file.
	Need string
}

// Class is the permission class (u, g or o) that decides for id on the
// blocked path: the one a chmod must open.
func (b *Blocked) Class(id Identity) string {
	switch {
	case b.Perm.UID == id.UID:
		return "u"
	case id.inGroup(b.Perm.GID):
		return "g"
	}
	return "o"
}

// Reach walks from / to target as id: every folder on the way must let id
// search it (x). The target itself must let id read it when read is set,
// and search it when it is a folder the caller wants reached (dir). The
// first path that stops id is returned; nil means id gets through. stat
// reads a path's permissions, following symbolic links.
func Reach(target string, id Identity, read, dir bool, stat func(string) (Perm, error)) (*Blocked, error) {
	target = filepath.Clean(target)
	if !filepath.IsAbs(target) {
		return nil, fmt.Errorf("%s is not an absolute path", target)
	}
	var folders []string
	for d := filepath.Dir(target); ; d = filepath.Dir(d) {
		folders = append([]string{d}, folders...)
		if d == "/" {
			break
		}
	}
	if dir {
		folders = append(folders, target)
	}
	for _, d := range folders {
		p, err := stat(d)
		if err != nil {
			return nil, err
		}
		if !p.allows(id, wantSearch) {
			return &Blocked{Path: d, Perm: p, Need: "search"}, nil
		}
	}
	if read && !dir {
		p, err := stat(target)
		if err != nil {
			return nil, err
		}
		if !p.allows(id, wantRead) {
			return &Blocked{Path: target, Perm: p, Need: "read"}, nil
		}
	}
	return nil, nil
}
