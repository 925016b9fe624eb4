package fix

import (
	"fmt"
	"strings"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
)

// verify checks the fixed guest's boot chain: every kernel has its
// initramfs, that initramfs holds the virtio drivers, root= and every fstab
// entry that must mount resolve to a file system of this disk. A problem a
// disabled fix would have solved is a warning; any other is an error, so a
// conversion that would not boot fails here rather than at first boot.
type verify struct{}

func (verify) Name() string { return "verify" }
func (verify) Summary() string {
	return "check the boot chain: kernels, initramfs with virtio, root= and fstab resolve"
}

func (verify) Applicable(c *Context) (bool, string) {
	if c.Info.OS != "linux" {
		return false, "not a Linux guest"
	}
	return true, "check the fixed boot chain"
}

func (v verify) Apply(c *Context) error {
	var hard, soft []string
	problem := func(fix, msg string) {
		if c.softFail[fix] {
			soft = append(soft, msg+" (the "+fix+" fix is off)")
		} else {
			hard = append(hard, msg)
		}
	}
	if len(c.Info.Kernels) == 0 {
		hard = append(hard, "no kernel in /boot")
	}
	for _, k := range c.Info.Kernels {
		if !c.FS.IsFile(k.Initramfs) {
			problem("initramfs", fmt.Sprintf("kernel %s has no initramfs at %s", k.Version, k.Initramfs))
		}
	}
	if !c.Opts.DryRun {
		if missing, err := missingVirtio(c); err == nil && len(missing) > 0 {
			problem("initramfs", "the initramfs of "+strings.Join(missing, ", ")+" has no virtio_blk")
		}
	}
	if b, err := c.FS.ReadFile("/etc/fstab"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			f := strings.Fields(l)
			if len(f) < 4 || strings.HasPrefix(f[0], "#") || f[2] == "nfs" || f[2] == "cifs" || f[2] == "tmpfs" || f[2] == "proc" {
				continue
			}
			if strings.Contains(f[3], "nofail") || strings.Contains(f[3], "noauto") {
				continue
			}
			unstable, bypath := isUnstable(f[0])
			_, found := resolve(c.Info, f[0])
			switch {
			case unstable && found:
				// It resolves here, where the appliance sees the disk as sda,
				// but not on a virtio disk, which is vda.
				msg := fmt.Sprintf("fstab mounts %s on %s by a name that does not exist on KVM", f[0], f[1])
				if c.Opts.FstabMode == FstabNone || (c.Opts.FstabMode == FstabByPathOnly && !bypath) {
					soft = append(soft, msg+" (fixes.fstab_mode is "+c.Opts.FstabMode+")")
				} else {
					problem("fstab", msg)
				}
			case !found:
				hard = append(hard, fmt.Sprintf("fstab mounts %s on %s, which is no file system of this disk", f[0], f[1]))
			}
		}
	}
	for _, p := range grubConfigs(c) {
		b, err := c.FS.ReadFile(p)
		if err != nil {
			continue
		}
		for _, m := range rootArg.FindAllStringSubmatch(string(b), -1) {
			if unstable, _ := isUnstable(m[2]); unstable {
				problem("grub", fmt.Sprintf("%s boots root=%s, which changes name on KVM", p, m[2]))
			}
		}
	}
	for _, s := range soft {
		c.Warn("%s", s)
	}
	if len(hard) > 0 {
		return fault.New(fault.FixFailed, "", "the fixed guest would not boot: %s", strings.Join(hard, "; ")).
			WithHint("Check the guest's boot configuration; the report lists every change made. Turning off the verify fix skips this check.")
	}
	return nil
}
