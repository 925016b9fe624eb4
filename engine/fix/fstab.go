package fix

import (
	"fmt"
	"strings"
)

// fstab rewrites entries that name a file system by its controller-given
// device (/dev/sda1, /dev/disk/by-path/..., /dev/disk/by-id/...) to UUID=,
// or PARTUUID= or LABEL= where the file system has no UUID. On KVM the disk
// is /dev/vda and its by-path differs, so those entries no longer resolve.
type fstab struct{}

func (fstab) Name() string { return "fstab" }
func (fstab) Summary() string {
	return "mount file systems by UUID instead of controller-dependent device names"
}

type fstabEdit struct {
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
	}
	return true, fmt.Sprintf("%d entr%s name a device that changes on KVM: %s", len(edits), plural(len(edits), "y", "ies"), strings.Join(names, ", "))
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func (f fstab) edits(c *Context) ([]fstabEdit, []string) {
	b, err := c.FS.ReadFile("/etc/fstab")
	if err != nil {
		return nil, nil
	}
	var edits []fstabEdit
	var unresolved []string
	for i, line := range strings.Split(string(b), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 2 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		dev := fields[0]
		unstable, bypath := isUnstable(dev)
		if !unstable || (c.Opts.FstabMode == FstabByPathOnly && !bypath) {
			continue
		}
		fsys, ok := resolve(c.Info, dev)
		if !ok {
			unresolved = append(unresolved, dev)
			continue
		}
		name, ok := stableName(fsys)
		if !ok {
			unresolved = append(unresolved, dev)
			continue
		}
		edits = append(edits, fstabEdit{i, dev, name, fmt.Sprintf("%s is %s (%s)", dev, fsys.Device, fsys.Type)})
	}
	return edits, unresolved
}

func (f fstab) Apply(c *Context) error {
	b, err := c.FS.ReadFile("/etc/fstab")
	if err != nil {
		return nil
	}
	edits, unresolved := f.edits(c)
	for _, u := range unresolved {
		c.Warn("left %s unchanged: it is not a file system of this disk", u)
	}
	lines := strings.Split(string(b), "\n")
	var reasons []string
	for _, e := range edits {
		// Replace the first field only, keeping the line's alignment.
		idx := strings.Index(lines[e.line], e.from)
		lines[e.line] = lines[e.line][:idx] + e.to + lines[e.line][idx+len(e.from):]
		reasons = append(reasons, fmt.Sprintf("%s -> %s (%s)", e.from, e.to, e.reason))
	}
	return c.Write("/etc/fstab", []byte(strings.Join(lines, "\n")), 0o644,
		"mount by stable identifiers: "+strings.Join(reasons, "; "))
}
