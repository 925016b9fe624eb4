package fix

import (
	"fmt"
	"path"
	"regexp"
	"strings"
)

// network removes what ties the guest's network to VMware: udev rules and
// systemd .link files that pin a NIC name to a VMware MAC, and
// configurations that name the VMware interface (ens192). On KVM the NIC
// has another MAC and another name, so the interface would come up
// unconfigured. With keep_network_identity the guest is left as it is, for
// domains that carry the source MAC over.
type network struct{}

func (network) Name() string { return "network" }
func (network) Summary() string {
	return "remove MAC pinning and VMware NIC names so the interface comes up under its KVM name"
}

// physical matches names a kernel or udev gives an Ethernet NIC.
var physical = regexp.MustCompile(`^(eth[0-9]+|en[a-z][0-9a-z]*|em[0-9]+|p[0-9]+p[0-9]+)$`)

type netWork struct {
	describe string
	apply    func(c *Context) error
}

func (n network) Applicable(c *Context) (bool, string) {
	if c.Info.OS != "linux" {
		return false, "not a Linux guest"
	}
	if c.Opts.KeepNetworkIdentity {
		return false, "fixes.network.keep_network_identity is set: the source MAC and NIC names are kept"
	}
	work := n.work(c)
	if len(work) == 0 {
		return false, "no MAC pinning or fixed NIC names found"
	}
	var d []string
	for _, w := range work {
		d = append(d, w.describe)
	}
	return true, strings.Join(d, "; ")
}

func (n network) Apply(c *Context) error {
	for _, w := range n.work(c) {
		if err := w.apply(c); err != nil {
			return err
		}
	}
	return nil
}

func (n network) work(c *Context) []netWork {
	var out []netWork
	out = append(out, udevPins(c)...)
	out = append(out, linkPins(c)...)
	out = append(out, ifupdownNames(c)...)
	out = append(out, networkdNames(c)...)
	out = append(out, netplanNames(c)...)
	out = append(out, nmNames(c)...)
	return out
}

var udevPin = regexp.MustCompile(`ATTRS?\{address\}==`)

func udevPins(c *Context) []netWork {
	files, _ := c.FS.Glob("/etc/udev/rules.d/*.rules")
	var out []netWork
	for _, p := range files {
		b, err := c.FS.ReadFile(p)
		if err != nil {
			continue
		}
		var keep []string
		pinned := 0
		meaningful := 0
		for _, l := range strings.Split(string(b), "\n") {
			if udevPin.MatchString(l) && strings.Contains(l, "NAME=") && !strings.HasPrefix(strings.TrimSpace(l), "#") {
				pinned++
				continue
			}
			keep = append(keep, l)
			if t := strings.TrimSpace(l); t != "" && !strings.HasPrefix(t, "#") {
				meaningful++
			}
		}
		if pinned == 0 {
			continue
		}
		p, keep, meaningful := p, keep, meaningful
		out = append(out, netWork{fmt.Sprintf("%s pins %d NIC name(s) to MAC addresses", p, pinned), func(c *Context) error {
			why := "a NIC name pinned to a VMware MAC never matches the new NIC"
			if meaningful == 0 {
				return c.Remove(p, why)
			}
			return c.Write(p, []byte(strings.Join(keep, "\n")), 0o644, why)
		}})
	}
	return out
}

func linkPins(c *Context) []netWork {
	files, _ := c.FS.Glob("/etc/systemd/network/*.link")
	var out []netWork
	for _, p := range files {
		b, err := c.FS.ReadFile(p)
		if err != nil {
			continue
		}
		s := string(b)
		if !regexp.MustCompile(`(?m)^\s*MACAddress=`).MatchString(s) || !regexp.MustCompile(`(?m)^\s*Name=`).MatchString(s) {
			continue
		}
		p := p
		out = append(out, netWork{p + " names the NIC with this MAC address", func(c *Context) error {
			return c.Remove(p, "a .link file that names the NIC by its VMware MAC never matches the new NIC")
		}})
	}
	return out
}

func ifaceFiles(c *Context) []string {
	out := []string{}
	if c.FS.IsFile("/etc/network/interfaces") {
		out = append(out, "/etc/network/interfaces")
	}
	d, _ := c.FS.Glob("/etc/network/interfaces.d/*")
	return append(out, d...)
}

// ifupdownNames turns "auto ens192" and "allow-hotplug ens192" into
// "auto /en*/1=ens192": the first Ethernet NIC the kernel knows, whatever
// its name, is configured by the ens192 stanza, and the n-th NIC named in
// the files maps to the n-th NIC found. Patterns are expanded against the
// NICs present when ifup runs, and Debian's hotplug helper does not expand
// them at all, so the interface is brought up by networking.service ("auto"),
// which a drop-in makes wait until udev has named every NIC.
func ifupdownNames(c *Context) []netWork {
	prefix := "en*"
	if strings.Contains(c.Info.KernelArgs, "net.ifnames=0") {
		prefix = "eth*"
	}
	order := map[string]int{}
	var out []netWork
	for _, p := range ifaceFiles(c) {
		b, err := c.FS.ReadFile(p)
		if err != nil {
			continue
		}
		lines := strings.Split(string(b), "\n")
		changed := []string{}
		for i, l := range lines {
			f := strings.Fields(l)
			if len(f) < 2 || !(f[0] == "auto" || strings.HasPrefix(f[0], "allow-")) {
				continue
			}
			edited := false
			for j := 1; j < len(f); j++ {
				name := f[j]
				if !physical.MatchString(name) {
					continue
				}
				if _, ok := order[name]; !ok {
					order[name] = len(order) + 1
				}
				f[j] = fmt.Sprintf("/%s/%d=%s", prefix, order[name], name)
				changed = append(changed, name)
				edited = true
			}
			if edited {
				if strings.HasPrefix(f[0], "allow-") {
					f[0] = "auto"
				}
				lines[i] = strings.Join(f, " ")
			}
		}
		if len(changed) == 0 {
			continue
		}
		p, out2 := p, strings.Join(lines, "\n")
		out = append(out, netWork{fmt.Sprintf("%s brings up %s by name", p, strings.Join(changed, ", ")), func(c *Context) error {
			return c.Write(p, []byte(out2), 0o644,
				fmt.Sprintf("bring up the NIC whatever KVM names it: ifupdown patterns (%s) map the n-th Ethernet NIC to the existing stanza, at boot", prefix))
		}})
	}
	if len(out) > 0 && c.FS.IsDir("/etc/systemd/system") {
		out = append(out, netWork{"networking.service may run before udev names the NIC", func(c *Context) error {
			return c.Write(settleDropIn, []byte("# Added by vmconv: NIC patterns in /etc/network/interfaces match only\n# interfaces udev has already named.\n[Service]\nExecStartPre=-/bin/udevadm settle\n"), 0o644,
				"make ifup -a wait until every NIC exists, so the patterns match")
		}})
	}
	return out
}

const settleDropIn = "/etc/systemd/system/networking.service.d/vmconv-udev-settle.conf"

// sectionEdit rewrites key=value lines in INI-like files, in one section.
func sectionEdit(b []byte, section string, edit func(key, val string) (string, bool)) (string, bool) {
	lines := strings.Split(string(b), "\n")
	cur := ""
	changed := false
	var out []string
	for _, l := range lines {
		t := strings.TrimSpace(l)
		if strings.HasPrefix(t, "[") && strings.HasSuffix(t, "]") {
			cur = strings.Trim(t, "[]")
			out = append(out, l)
			continue
		}
		k, v, ok := strings.Cut(t, "=")
		if ok && strings.EqualFold(cur, section) {
			nl, keep := edit(strings.TrimSpace(k), strings.TrimSpace(v))
			if !keep {
				changed = true
				continue
			}
			if nl != t {
				changed = true
				l = nl
			}
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n"), changed
}

// singleNIC decides for stacks that can only match by name pattern: with
// one Ethernet NIC configured, a pattern is exact; with several, the KVM
// names are not known at conversion time and the files are left alone.
func singleNIC(c *Context, stack string, names map[string]bool) bool {
	if len(names) <= 1 {
		return true
	}
	var n []string
	for k := range names {
		n = append(n, k)
	}
	c.Warn("%s configures %d NICs (%s); their names on KVM are not known at conversion time, so they are left as they are. "+
		"Set fixes.network.keep_network_identity and give the domain the source MACs, or fix the names after the first boot.", stack, len(n), strings.Join(n, ", "))
	return false
}

func networkdNames(c *Context) []netWork {
	files, _ := c.FS.Glob("/etc/systemd/network/*.network")
	names := map[string]bool{}
	for _, p := range files {
		b, _ := c.FS.ReadFile(p)
		sectionEdit(b, "Match", func(k, v string) (string, bool) {
			if k == "Name" && physical.MatchString(v) {
				names[v] = true
			}
			return k + "=" + v, true
		})
	}
	if len(names) == 0 || !singleNIC(c, "systemd-networkd", names) {
		return nil
	}
	var out []netWork
	for _, p := range files {
		b, _ := c.FS.ReadFile(p)
		edited, changed := sectionEdit(b, "Match", func(k, v string) (string, bool) {
			switch {
			case k == "Name" && physical.MatchString(v):
				return "Name=en* eth*", true
			case k == "MACAddress" || k == "PermanentMACAddress":
				return "", false
			}
			return k + "=" + v, true
		})
		if !changed {
			continue
		}
		p := p
		out = append(out, netWork{p + " matches the VMware NIC by name or MAC", func(c *Context) error {
			return c.Write(p, []byte(edited), 0o644, "match any Ethernet NIC (en*, eth*), since KVM names it differently")
		}})
	}
	return out
}

// netplanNames handles the usual layout: network.ethernets.<name> with an
// optional match block and set-name. The single NIC gets match: name: en*.
func netplanNames(c *Context) []netWork {
	files, _ := c.FS.Glob("/etc/netplan/*.yaml")
	var out []netWork
	for _, p := range files {
		b, err := c.FS.ReadFile(p)
		if err != nil {
			continue
		}
		edited, names, ok := netplanEdit(string(b))
		if !ok || len(names) == 0 || !singleNIC(c, "netplan "+path.Base(p), names) {
			continue
		}
		p := p
		out = append(out, netWork{p + " configures the VMware NIC by name or MAC", func(c *Context) error {
			return c.Write(p, []byte(edited), 0o600, "match any Ethernet NIC (en*) instead of the VMware name or MAC")
		}})
	}
	return out
}

func indentOf(l string) int { return len(l) - len(strings.TrimLeft(l, " ")) }

func netplanEdit(s string) (string, map[string]bool, bool) {
	lines := strings.Split(s, "\n")
	names := map[string]bool{}
	eth := -1
	for i, l := range lines {
		if strings.TrimSpace(l) == "ethernets:" {
			eth = i
			break
		}
	}
	if eth < 0 {
		return s, names, false
	}
	base := indentOf(lines[eth])
	childIndent := -1
	var out []string
	out = append(out, lines[:eth+1]...)
	i := eth + 1
	for i < len(lines) {
		l := lines[i]
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "#") {
			out = append(out, l)
			i++
			continue
		}
		ind := indentOf(l)
		if ind <= base {
			break
		}
		if childIndent < 0 {
			childIndent = ind
		}
		if ind == childIndent && strings.HasSuffix(t, ":") {
			name := strings.TrimSuffix(t, ":")
			out = append(out, l)
			i++
			var body []string
			for i < len(lines) && (strings.TrimSpace(lines[i]) == "" || indentOf(lines[i]) > childIndent) {
				body = append(body, lines[i])
				i++
			}
			if !physical.MatchString(name) && !hasMatch(body) {
				out = append(out, body...)
				continue
			}
			names[name] = true
			inner := childIndent + 2
			if len(body) > 0 && strings.TrimSpace(body[0]) != "" {
				inner = indentOf(body[0])
			}
			pad := strings.Repeat(" ", inner)
			out = append(out, pad+"match:", pad+"  name: \"en*\"")
			skip := -1
			for _, bl := range body {
				bt := strings.TrimSpace(bl)
				bi := indentOf(bl)
				if skip >= 0 && bi > skip {
					continue
				}
				skip = -1
				if strings.HasPrefix(bt, "match:") || strings.HasPrefix(bt, "set-name:") || strings.HasPrefix(bt, "macaddress:") {
					if strings.HasPrefix(bt, "match:") {
						skip = bi
					}
					continue
				}
				out = append(out, bl)
			}
			continue
		}
		out = append(out, l)
		i++
	}
	out = append(out, lines[i:]...)
	return strings.Join(out, "\n"), names, true
}

func hasMatch(body []string) bool {
	for _, l := range body {
		if strings.HasPrefix(strings.TrimSpace(l), "match:") {
			return true
		}
	}
	return false
}

func nmNames(c *Context) []netWork {
	keyfiles, _ := c.FS.Glob("/etc/NetworkManager/system-connections/*")
	ifcfg, _ := c.FS.Glob("/etc/sysconfig/network-scripts/ifcfg-*")
	names := map[string]bool{}
	type edit struct{ path, out string }
	var edits []edit
	for _, p := range keyfiles {
		b, err := c.FS.ReadFile(p)
		if err != nil || !strings.Contains(string(b), "type=ethernet") && !strings.Contains(string(b), "type=802-3-ethernet") {
			continue
		}
		s, ch1 := sectionEdit(b, "connection", func(k, v string) (string, bool) {
			if k == "interface-name" {
				names[v] = true
				return "", false
			}
			return k + "=" + v, true
		})
		s, ch2 := sectionEdit([]byte(s), "ethernet", func(k, v string) (string, bool) {
			if k == "mac-address" {
				return "", false
			}
			return k + "=" + v, true
		})
		if ch1 || ch2 {
			edits = append(edits, edit{p, s})
		}
	}
	for _, p := range ifcfg {
		if strings.HasSuffix(p, "ifcfg-lo") {
			continue
		}
		b, err := c.FS.ReadFile(p)
		if err != nil {
			continue
		}
		var keep []string
		changed := false
		for _, l := range strings.Split(string(b), "\n") {
			k, v, _ := strings.Cut(strings.TrimSpace(l), "=")
			switch k {
			case "HWADDR", "MACADDR":
				changed = true
				continue
			case "DEVICE":
				if n := strings.Trim(v, `"'`); physical.MatchString(n) {
					names[n] = true
					changed = true
					continue
				}
			}
			keep = append(keep, l)
		}
		if changed {
			edits = append(edits, edit{p, strings.Join(keep, "\n")})
		}
	}
	if len(edits) == 0 || !singleNIC(c, "NetworkManager", names) {
		return nil
	}
	var out []netWork
	for _, e := range edits {
		e := e
		out = append(out, netWork{e.path + " binds the connection to the VMware NIC's name or MAC", func(c *Context) error {
			return c.Write(e.path, []byte(e.out), 0o600, "let the connection apply to the KVM NIC: no interface name or MAC binding")
		}})
	}
	return out
}
