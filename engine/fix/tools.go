package fix

import (
	"fmt"
	"strings"

	"github.com/vmconv/terraform-provider-vmconv/engine/guest"
)

// vmwareTools removes VMware tools, whose services fail or misbehave on
// KVM. Turn it off with keep_vmware_tools or fixes.disabled.
type vmwareTools struct{}

func (vmwareTools) Name() string    { return "vmware-tools" }
func (vmwareTools) Summary() string { return "remove VMware tools" }

func installedPackages(c *Context, names ...string) []string {
	var out []string
	for _, n := range names {
		switch c.Info.PackageFormat {
		case "deb":
			b, err := c.FS.ReadFile("/var/lib/dpkg/status")
			if err == nil && strings.Contains(string(b), "Package: "+n+"\nStatus: install ok installed") {
				out = append(out, n)
			}
		case "rpm":
			if c.FS.IsFile("/usr/bin/vmtoolsd") && n == "open-vm-tools" {
				out = append(out, n)
			}
		}
	}
	return out
}

func (v vmwareTools) Applicable(c *Context) (bool, string) {
	if c.Info.OS != "linux" {
		return false, "not a Linux guest"
	}
	if c.Opts.KeepVMwareTools {
		return false, "fixes.keep_vmware_tools is set"
	}
	if guest.Has(c.Info.HypervisorTools, "vmware-tools") {
		return true, "VMware Tools (tar installation) is installed"
	}
	if pkgs := installedPackages(c, "open-vm-tools", "open-vm-tools-desktop"); len(pkgs) > 0 {
		return true, strings.Join(pkgs, ", ") + " installed"
	}
	return false, "no VMware tools installed"
}

func (v vmwareTools) Apply(c *Context) error {
	if guest.Has(c.Info.HypervisorTools, "vmware-tools") {
		_, err := c.Run("VMware's own uninstaller removes the tar installation", "/usr/bin/vmware-uninstall-tools.pl", "--default")
		return err
	}
	pkgs := installedPackages(c, "open-vm-tools-desktop", "open-vm-tools")
	switch c.Info.PackageFormat {
	case "deb":
		_, err := c.Run("VMware tools do nothing on KVM and their services fail there",
			append([]string{"env", "DEBIAN_FRONTEND=noninteractive", "dpkg", "--purge"}, pkgs...)...)
		return err
	case "rpm":
		_, err := c.Run("VMware tools do nothing on KVM and their services fail there", append([]string{"rpm", "-e", "--nodeps"}, pkgs...)...)
		return err
	}
	return fmt.Errorf("vmware-tools: no package manager for %q", c.Info.PackageFormat)
}

// selinuxRelabel schedules a full relabel at first boot: offline edits
// leave files without correct SELinux labels.
type selinuxRelabel struct{}

func (selinuxRelabel) Name() string { return "selinux-relabel" }
func (selinuxRelabel) Summary() string {
	return "relabel SELinux file contexts at first boot after offline edits"
}

func (selinuxRelabel) Applicable(c *Context) (bool, string) {
	switch c.Info.SELinux {
	case "enforcing", "permissive":
		return true, "SELinux is " + c.Info.SELinux + " and files were edited offline"
	}
	return false, "SELinux is not enabled"
}

func (selinuxRelabel) Apply(c *Context) error {
	return c.Write("/.autorelabel", nil, 0o644, "files edited offline carry no SELinux labels; the guest relabels at first boot")
}
