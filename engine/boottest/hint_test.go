package boottest

import (
	"strings"
	"testing"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
)

// Each failed boot gets hints for where it ran: a hint never names a fix
// that did not run, a NIC the domain does not have, or an output or a
// console log that is not there.
func TestBootTestErrorHints(t *testing.T) {
	fixes := &Fixes{Enabled: true}
	noInitramfs := &Fixes{Enabled: true}
	noInitramfs.Disabled = []string{"initramfs"}
	conversion := Site{Fixes: fixes}
	for _, tc := range []struct {
		name   string
		reason string
		site   Site
		says   []string
		never  []string
	}{
		{"conversion, root not found, fixes ran", ReasonRootNotFound, conversion,
			[]string{"Nothing was written at the output path", "kept at /out/x.boot.log", "initramfs, fstab and grub fixes ran"}, []string{"domain"}},
		{"conversion, root not found, initramfs fix off", ReasonRootNotFound, Site{Fixes: noInitramfs},
			[]string{"fixes.disabled turning off initramfs"}, []string{"fixes ran"}},
		{"conversion, root not found, fixes off", ReasonRootNotFound, Site{Fixes: &Fixes{}},
			[]string{"fixes off (fixes.enabled = false)"}, nil},
		{"conversion, network down", ReasonNetworkDown, conversion,
			[]string{"e1000 on user-mode networking", "boot_test.require_network = false"}, []string{"network_interfaces"}},
		{"conversion, emergency", ReasonEmergency, conversion,
			[]string{"which mount failed", "nofail"}, nil},
		{"conversion rerun, timeout", ReasonTimeout, Site{Rerun: true, Fixes: fixes},
			[]string{"The output was not changed", "Raise boot_test.timeout"}, []string{"Nothing was written"}},
		{"domain without NIC, network down", ReasonNetworkDown, Site{Domain: "web", Disk: "/out/x.qcow2", Fixes: fixes},
			[]string{"no network interface", "network_interfaces"}, []string{"network fix", "fixes", "Nothing was written", "/out/x.boot.log"}},
		{"domain on a libvirt network, network down", ReasonNetworkDown, Site{Domain: "web", Disk: "/out/x.qcow2", Fixes: fixes, NICs: []NIC{{Network: "default"}}},
			[]string{`libvirt network "default"`, "DHCP", "keep_network_identity"}, []string{"user-mode"}},
		{"domain on a disk vmconv did not convert, root not found", ReasonRootNotFound, Site{Domain: "web", Disk: "/img/old.qcow2"},
			[]string{"not converted by vmconv", "vmconv_disk_conversion", "The domain was removed again"}, []string{"fixes.disabled", "fixes ran", "Nothing was written"}},
		{"domain on a converted disk, root not found", ReasonRootNotFound, Site{Domain: "web", Disk: "/out/x.qcow2", Fixes: fixes},
			[]string{"this boot used sata", "in disks"}, []string{"not converted"}},
		{"domain with a success pattern, timeout", ReasonTimeout, Site{Domain: "win", Disk: "/out/w.qcow2", Fixes: fixes, Pattern: true},
			[]string{"success_pattern never matched"}, []string{"multi-user"}},
		{"domain, no boot loader", ReasonNoBootloader, Site{Domain: "web", Disk: "/out/x.qcow2", Fixes: fixes},
			[]string{"the domain's firmware"}, []string{"boot_test.firmware"}},
		{"domain, hypervisor", ReasonHypervisor, Site{Domain: "web", Disk: "/out/x.qcow2", Fixes: fixes},
			[]string{"/var/log/libvirt/qemu/web.log"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &Result{Status: "failed", Reason: tc.reason, Detail: "d", ConsoleLog: "/out/x.boot.log", DiskBus: "sata", NICModel: "e1000", Firmware: "bios"}
			err := Error(r, tc.site)
			fe, ok := fault.As(err)
			if !ok || fe.Code != fault.BootTestFailed {
				t.Fatalf("got %v", err)
			}
			text := fe.Error() + "\n" + fe.Hint
			for _, s := range tc.says {
				if !strings.Contains(text, s) {
					t.Errorf("does not say %q:\n%s", s, text)
				}
			}
			for _, s := range tc.never {
				if strings.Contains(text, s) {
					t.Errorf("says %q:\n%s", s, text)
				}
			}
		})
	}
}
