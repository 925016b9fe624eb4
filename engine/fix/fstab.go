package fix

import (
	"fmt"
	"strings"
)

// fstab rewrites the device references that name a disk by its
// controller-given device (/dev/sda1, /dev/disk/by-path/..., by-id/...) to
// UUID=, or PARTUUID= or LABEL= where the file system has no UUID: fstab's
// file systems, crypttab's encrypted devices and the initramfs's resume
// device. On KVM the disk is /dev/vda and its by-path differs, so those
// names no longer resolve: a mount waits 90 s and drops to emergency
// mode, an encrypted volume is not opened, resume waits for a device that
// never comes. (resume= on the kernel command line is the grub fix's.)
type fstab struct{}

func (fstab) Name() string { return "fstab" }
func (fstab) Summary() string {
	return "mount file systems (fstab, crypttab, the resume device) by UUID instead of controller-dependent device names"
}

// deviceFile is a file that names devices: in a whitespace-separated
// field of each line, or as the value of key=.
type deviceFile struct {
	path  string
	field int
	key   string
}

var deviceFiles = []deviceFile{
	{path: "/etc/fstab", field: 0},
	{path: "/etc/crypttab", field: 1},
	{path: "/etc/initramfs-tools/conf.d/resume", key: "RESUME"},
}

type fstabEdit struct {
	path   string
	line   int
	from   string
	to     string
	reason string
}

func (f fstab) Applicable(c *Context) (bool, string) {
	if c.Info.OS != "linux" {
		return false, "not a Linux guest"
	}
	if c.Opts.FstabMode == FstabNone {
		return false, "fixes.fstab_mode is none"
	}
	edits, unresolved := f.edits(c)
	if len(edits) == 0 {
		if len(unresolved) > 0 {
			return false, "fstab names devices that are not on this disk: " + strings.Join(unresolved, ", ")
		}
		return false, "every fstab entry already uses a stable name"
	}
	var names []string
	for _, e := range edits {
		names = append(names, e.from)
		if e.path != "/etc/fstab" {
			names[len(names)-1] += " (" + e.path + ")"
		}
	}
	return true, fmt.Sprintf("%d entr%s name a device that changes on KVM: %s", len(edits), plural(len(edits), "y", "ies"), strings.Join(names, ", "))
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// edits lists every reference to rewrite, file by file, and the unstable
// ones that name no file system the guest's disks hold.
func (f fstab) edits(c *Context) ([]fstabEdit, []string) {
	var edits []fstabEdit
	var unresolved []string
	for _, df := range deviceFiles {
		b, err := c.FS.ReadFile(df.path)
		if err != nil {
			continue
		}
		for i, line := range strings.Split(string(b), "\n") {
			dev := df.device(line)
			if dev == "" {
				continue
			}
			unstable, bypath := isUnstable(dev)
			if !unstable || (c.Opts.FstabMode == FstabByPathOnly && !bypath) {
				continue
			}
			fsys, ok := resolve(c.Info, dev)
			name := ""
			if ok {
				name, ok = stableName(fsys)
			}
			if !ok {
				unresolved = append(unresolved, dev)
				continue
			}
			edits = append(edits, fstabEdit{df.path, i, dev, name, fmt.Sprintf("%s is %s (%s)", dev, fsys.Device, fsys.Type)})
		}
	}
	return edits, unresolved
}

// device is the device a line of the file names, or "".
func (df deviceFile) device(line string) string {
	t := strings.TrimSpace(line)
	if t == "" || strings.HasPrefix(t, "#") {
		return ""
	}
	if df.key != "" {
		v, ok := strings.CutPrefix(t, df.key+"=")
		if !ok {
			return ""
		}
		return strings.Trim(v, `"'`)
	}
	fields := strings.Fields(t)
	if len(fields) < 2 || len(fields) <= df.field {
		return ""
	}
	return fields[df.field]
}

func (f fstab) Apply(c *Context) error {
	edits, unresolved := f.edits(c)
	for _, u := range unresolved {
		c.Warn("left %s unchanged: it is not a file system of this disk", u)
	}
	for _, df := range deviceFiles {
		b, err := c.FS.ReadFile(df.path)
		if err != nil {
			continue
		}
		lines := strings.Split(string(b), "\n")
		var reasons []string
		for _, e := range edits {
			if e.path != df.path {
				continue
			}
			// Replace the device only, keeping the line's alignment.
			idx := strings.Index(lines[e.line], e.from)
			if df.field > 0 {
				// A later field: find it after the fields before it.
				idx = fieldOffset(lines[e.line], df.field)
			}
			lines[e.line] = lines[e.line][:idx] + e.to + lines[e.line][idx+len(e.from):]
			reasons = append(reasons, fmt.Sprintf("%s -> %s (%s)", e.from, e.to, e.reason))
		}
		if len(reasons) == 0 {
			continue
		}
		if err := c.Write(df.path, []byte(strings.Join(lines, "\n")), 0o644,
			"name devices by stable identifiers: "+strings.Join(reasons, "; ")); err != nil {
			return err
		}
	}
	return nil
}

// fieldOffset is where the n-th whitespace-separated field of line starts.
func fieldOffset(line string, n int) int {
	in, field := false, -1
	for i, r := range line {
		space := r == ' ' || r == '\t'
		if !space && !in {
			field++
			if field == n {
				return i
			}
		}
		in = !space
	}
	return len(line)
}
