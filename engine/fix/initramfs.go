package fix

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/engine/guest"
)

// virtioModules are the drivers a guest needs in its initramfs to find its
// root on a virtio disk: the PCI transport, the block and SCSI drivers, and
// the NIC (for network root and early networking).
var virtioModules = []string{"virtio_pci", "virtio_blk", "virtio_scsi", "virtio_net"}

// initramfs regenerates every installed kernel's initramfs with the virtio
// drivers. A VMware guest's initramfs holds the drivers of VMware's virtual
// hardware (vmw_pvscsi, mptspi, ahci) and, where the distribution builds
// host-only images, nothing else: on a virtio disk the root never appears.
type initramfs struct{}

func (initramfs) Name() string { return "initramfs" }
func (initramfs) Summary() string {
	return "give each kernel's initramfs the virtio drivers: added to the image, or rebuilt with initramfs-tools or dracut"
}

// listInitramfs lists an image's files with the distribution's own tool.
func listInitramfs(c *Context, image string) (string, error) {
	switch c.Info.InitramfsTool {
	case "dracut":
		return c.FS.Command(c.Ctx, "lsinitrd", image)
	default:
		return c.FS.Command(c.Ctx, "lsinitramfs", image)
	}
}

// initramfsInputs are files the initramfs tools copy into the image (the
// encrypted volumes to open, the device to resume from): a fix to one is
// stale in the image until it is rebuilt.
var initramfsInputs = []string{"/etc/crypttab", "/etc/initramfs-tools/conf.d/resume"}

// changedInputs lists the initramfs inputs that earlier fixes changed.
func changedInputs(c *Context) []string {
	var out []string
	for _, ch := range c.changes {
		for _, p := range initramfsInputs {
			if ch.Path == p && !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	return out
}

// missingVirtio reports the kernels whose initramfs lacks virtio_blk.
func missingVirtio(c *Context) (missing []string, err error) {
	for _, k := range c.Info.Kernels {
		if !c.FS.IsFile(k.Initramfs) {
			missing = append(missing, k.Version)
			continue
		}
		out, err := listInitramfs(c, k.Initramfs)
		if err != nil {
			return nil, fmt.Errorf("listing %s: %w", k.Initramfs, err)
		}
		if !strings.Contains(out, "virtio_blk.ko") {
			missing = append(missing, k.Version)
		}
	}
	return missing, nil
}

func (i initramfs) Applicable(c *Context) (bool, string) {
	if c.Info.OS != "linux" {
		return false, "not a Linux guest"
	}
	switch c.Info.InitramfsTool {
	case "initramfs-tools", "dracut":
	default:
		return false, "no supported initramfs tool (initramfs-tools or dracut) in the guest"
	}
	if len(c.Info.Kernels) == 0 {
		return false, "no kernel installed"
	}
	missing, err := missingVirtio(c)
	if err != nil {
		// Cannot tell: rebuilding is harmless, not rebuilding may not boot.
		return true, "could not list the initramfs contents (" + err.Error() + "); rebuilding with virtio to be safe"
	}
	if len(missing) == 0 {
		if stale := changedInputs(c); len(stale) > 0 {
			return true, "the initramfs holds its own copy of " + strings.Join(stale, ", ") + ", which the fixes changed: the image would still name the old devices"
		}
		return false, "every initramfs already holds the virtio drivers"
	}
	return true, "the initramfs of " + strings.Join(missing, ", ") + " has no virtio_blk driver, so the root file system is not found on a virtio disk"
}

func (i initramfs) Apply(c *Context) error {
	switch c.Info.InitramfsTool {
	case "initramfs-tools":
		return i.initramfsTools(c)
	default:
		return i.dracut(c)
	}
}

func (i initramfs) initramfsTools(c *Context) error {
	const p = "/etc/initramfs-tools/modules"
	b, _ := c.FS.ReadFile(p)
	have := map[string]bool{}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			have[f[0]] = true
		}
	}
	add := ""
	for _, m := range virtioModules {
		if !have[m] {
			add += m + "\n"
		}
	}
	if add != "" {
		out := strings.TrimRight(string(b), "\n") + "\n# Added by vmconv: virtio drivers, so the guest boots on KVM.\n" + add
		if err := c.Write(p, []byte(out), 0o644, "initramfs-tools includes the modules listed here in every image it builds"); err != nil {
			return err
		}
	}
	for _, k := range c.Info.Kernels {
		if err := update(c, k, "update-initramfs", "-u", "-k", k.Version); err != nil {
			return err
		}
	}
	return nil
}

func (i initramfs) dracut(c *Context) error {
	const p = "/etc/dracut.conf.d/90-vmconv-virtio.conf"
	conf := "# Added by vmconv: virtio drivers, so the guest boots on KVM, even in\n# host-only images built on other hardware.\nadd_drivers+=\" " + strings.Join(virtioModules, " ") + " \"\n"
	if err := c.Write(p, []byte(conf), 0o644, "keep the virtio drivers in images dracut builds later"); err != nil {
		return err
	}
	for _, k := range c.Info.Kernels {
		if err := update(c, k, "dracut", "--force", "--add-drivers", strings.Join(virtioModules, " "), k.Initramfs, k.Version); err != nil {
			return err
		}
	}
	return nil
}

// update gives one kernel's image the virtio drivers: by adding them to the
// image where it can (addDrivers), else by the distribution's rebuild. An
// image that holds them already, with nothing else to pick up, is left as
// it is.
func update(c *Context, k guest.Kernel, rebuild ...string) error {
	before, existed := c.Sum(k.Initramfs)
	how, err := addDrivers(c, k)
	var narrow errNarrow
	switch {
	case err == nil:
		c.Track(k.Initramfs, how, before, existed)
		return nil
	case errors.Is(err, errHasDrivers):
		return nil
	case !errors.As(err, &narrow):
		if c.Ctx.Err() != nil {
			return c.Ctx.Err()
		}
		return fault.Wrap(fault.FixFailed, k.Initramfs, err, "%s: cannot add the virtio drivers to %s", c.fix, k.Initramfs)
	}
	if _, err := c.Run("rebuild the initramfs of "+k.Version+" with the virtio drivers ("+narrow.why+")", rebuild...); err != nil {
		return err
	}
	c.Track(k.Initramfs, "rebuilt with the virtio drivers (by the command above)", before, existed)
	return nil
}
