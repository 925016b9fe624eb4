package fix

import (
	"fmt"
	"strings"
	"testing"

	"github.com/vmconv/terraform-provider-vmconv/engine/guest/guesttest"
)

// newc writes an uncompressed cpio archive of regular files (parents
// implied), as an image with no compressed part.
func newc(files ...string) string {
	var b strings.Builder
	entry := func(name string, mode, size int) {
		fmt.Fprintf(&b, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X", 1, mode, 0, 0, 1, 0, size, 0, 0, 0, 0, len(name)+1, 0)
		b.WriteString(name + "\x00")
		for b.Len()%4 != 0 {
			b.WriteByte(0)
		}
	}
	for _, f := range files {
		entry(f, 0o100644, 1)
		b.WriteString("x")
		for b.Len()%4 != 0 {
			b.WriteByte(0)
		}
	}
	entry("TRAILER!!!", 0, 0)
	return b.String()
}

const modDir = "usr/lib/modules/6.1.0-50-amd64/"

var guestDeps = `kernel/drivers/scsi/vmw_pvscsi.ko:
kernel/drivers/virtio/virtio.ko:
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
kernel/drivers/scsi/virtio_scsi.ko: kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/net/core/failover.ko:
kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
`

// The edit is decided by reading only, so a dry run plans exactly the
// modules the apply adds; a guest whose modules are compressed, or that
// no longer has a module its image holds, is rebuilt, and says why.
func TestInitramfsEditPlan(t *testing.T) {
	noVirtio := func(argv []string) (string, error) {
		if argv[0] == "lsinitramfs" {
			return modDir + "kernel/drivers/scsi/vmw_pvscsi.ko\n", nil
		}
		return "", nil
	}
	image := newc(modDir+"modules.dep", modDir+"kernel/drivers/scsi/vmw_pvscsi.ko", "conf/modules")
	imageChange := func(res *Result) string {
		for _, ch := range res.Changes {
			if ch.Fix == "initramfs" && ch.Path == "/boot/initrd.img-6.1.0-50-amd64" {
				return ch.Action + ": " + ch.Reason
			}
		}
		return ""
	}
	commands := func(res *Result) (out []string) {
		for _, ch := range res.Changes {
			if ch.Action == "command" {
				out = append(out, ch.Command+" ("+ch.Reason+")")
			}
		}
		return out
	}

	t.Run("planned", func(t *testing.T) {
		m := guesttest.New(map[string]string{"/boot/initrd.img-6.1.0-50-amd64": image, "/lib/modules/6.1.0-50-amd64/modules.dep": guestDeps})
		m.Run = noVirtio
		res := runFixes(t, debianInfo(), m, Options{DryRun: true, Disabled: []string{"verify", "vmware-tools"}})
		want := "modified: added virtio_ring.ko, virtio.ko, virtio_pci.ko, virtio_blk.ko, virtio_scsi.ko, net_failover.ko, failover.ko, virtio_net.ko and a new module index to the image, without rebuilding it"
		if got := imageChange(res); got != want {
			t.Errorf("planned image change:\n got %s\nwant %s", got, want)
		}
		if c := commands(res); len(c) != 0 {
			t.Errorf("an edit planned commands: %v", c)
		}
	})
	for _, c := range []struct{ name, deps, image, why string }{
		{"compressed modules", strings.ReplaceAll(guestDeps, ".ko", ".ko.xz"), image, "the guest's modules are compressed"},
		{"a module the guest lost", strings.ReplaceAll(guestDeps, "kernel/drivers/scsi/vmw_pvscsi.ko:\n", ""), image, "no longer include"},
		{"virtio built in", strings.ReplaceAll(guestDeps, "kernel/drivers/block/virtio_blk.ko:", "kernel/drivers/block/virtio_blk_other.ko:"), image, "virtio_blk is not a module"},
		{"no module index in the image", guestDeps, newc(modDir + "kernel/drivers/scsi/vmw_pvscsi.ko"), "no module index"},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, dry := range []bool{true, false} {
				m := guesttest.New(map[string]string{"/boot/initrd.img-6.1.0-50-amd64": c.image, "/lib/modules/6.1.0-50-amd64/modules.dep": c.deps})
				m.Run = noVirtio
				res := runFixes(t, debianInfo(), m, Options{DryRun: dry, Disabled: []string{"verify", "vmware-tools"}})
				cmds := commands(res)
				if len(cmds) != 1 || !strings.HasPrefix(cmds[0], "update-initramfs -u -k 6.1.0-50-amd64 ") || !strings.Contains(cmds[0], c.why) {
					t.Errorf("dry run %v: commands %v, want a rebuild saying %q", dry, cmds, c.why)
				}
				if got := imageChange(res); dry && got != "modified: rebuilt with the virtio drivers (by the command above)" {
					t.Errorf("dry run: image change %q", got)
				}
				for _, cmd := range m.Commands {
					if strings.HasPrefix(cmd, "/bin/sh") {
						t.Errorf("dry run %v: the guest ran the indexing script", dry)
					}
				}
			}
		})
	}
}
