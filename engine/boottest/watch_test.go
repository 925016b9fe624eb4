package boottest

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Console lines as the fixture guests print them.
func TestWatchClassifiesConsoles(t *testing.T) {
	cases := []struct {
		name, console, reason, status string
		ips                           int
	}{
		{"marker with network", "[  OK  ] Reached target multi-user.target\nVMCONV-BOOT-MARKER abc ip=enp0s3=10.0.2.15/24 \n", ReasonSuccess, "passed", 1},
		{"marker without network", "VMCONV-BOOT-MARKER abc ip=none\n", ReasonNetworkDown, "failed", 0},
		{"someone else's marker", "VMCONV-BOOT-MARKER zzz ip=eth0=1.2.3.4/8\n", ReasonTimeout, "failed", 0},
		{"initramfs-tools", "Begin: Running /scripts/local-block ... done.\nGave up waiting for root file system device.  Common problems:\nALERT!  /dev/sda1 does not exist.  Dropping to a shell!\n", ReasonRootNotFound, "failed", 0},
		{"dracut", "[  225.770475] dracut-initqueue[318]: Warning: dracut-initqueue: timeout, still waiting for following initqueue hooks:\n", ReasonRootNotFound, "failed", 0},
		{"emergency", "[FAILED] Failed to mount boot.mount - /boot.\nYou are in emergency mode. After logging in, type \"journalctl -xb\"\n", ReasonEmergency, "failed", 0},
		{"uefi shell", "BdsDxe: No bootable option or device was found.\nUEFI Interactive Shell v2.2\n", ReasonNoBootloader, "failed", 0},
		{"swap timeout is not a root failure", "[ TIME ] Timed out waiting for device dev-disk-by\\x2dpath-pci-0000:03:00.0-scsi-0:0:0:0-part2.device\nVMCONV-BOOT-MARKER abc ip=ens192=10.0.2.15/24\n", ReasonSuccess, "passed", 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			log := filepath.Join(t.TempDir(), "console.log")
			os.WriteFile(log, []byte(c.console), 0o644)
			ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
			defer cancel()
			r, err := Watch(ctx, log, "abc", Options{RequireNetwork: true, Timeout: time.Second}, func() error { return nil })
			if err != nil {
				t.Fatal(err)
			}
			if r.Status != c.status || r.Reason != c.reason || len(r.IPAddresses) != c.ips {
				t.Fatalf("got %s/%s %v (%s), want %s/%s with %d addresses", r.Status, r.Reason, r.IPAddresses, r.Matched, c.status, c.reason, c.ips)
			}
		})
	}
}
