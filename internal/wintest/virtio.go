package wintest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// virtioDrivers are the drivers of a virtio-win tree with the PCI IDs their
// INFs bind (transitional and modern devices).
var virtioDrivers = []struct {
	name, service, class, classGUID string
	ids                             []string
}{
	{"viostor", "viostor", "SCSIAdapter", "{4D36E97B-E325-11CE-BFC1-08002BE10318}", []string{`PCI\VEN_1AF4&DEV_1001&SUBSYS_00021AF4&REV_00`, `PCI\VEN_1AF4&DEV_1042&SUBSYS_11001AF4&REV_01`}},
	{"vioscsi", "vioscsi", "SCSIAdapter", "{4D36E97B-E325-11CE-BFC1-08002BE10318}", []string{`PCI\VEN_1AF4&DEV_1004&SUBSYS_00081AF4&REV_00`, `PCI\VEN_1AF4&DEV_1048&SUBSYS_11001AF4&REV_01`}},
	{"NetKVM", "netkvm", "Net", "{4d36e972-e325-11ce-bfc1-08002be10318}", []string{`PCI\VEN_1AF4&DEV_1000&SUBSYS_00011AF4&REV_00`, `PCI\VEN_1AF4&DEV_1041&SUBSYS_11001AF4&REV_01`}},
	{"Balloon", "balloon", "System", "{4d36e97d-e325-11ce-bfc1-08002be10318}", []string{`PCI\VEN_1AF4&DEV_1002&SUBSYS_00051AF4&REV_00`, `PCI\VEN_1AF4&DEV_1045&SUBSYS_11001AF4&REV_01`}},
}

// VirtioVersion is the DriverVer of the fake tree's drivers.
const VirtioVersion = "100.95.104.26200"

// VirtioWin writes a fake virtio-win tree in the real layout
// (<driver>/<windows>/<arch>/ with INF, SYS and CAT files) for the given
// Windows folders and architectures. The INFs carry real DriverVer,
// hardware-ID and AddService lines; the SYS files are minimal PEs. The
// guest agent's installers are in guest-agent/ for each architecture.
func VirtioWin(root string, osDirs, arches []string) error {
	for _, arch := range arches {
		msi := map[string]string{"amd64": "qemu-ga-x86_64.msi", "x86": "qemu-ga-i386.msi"}[arch]
		if msi == "" {
			continue
		}
		if err := os.MkdirAll(filepath.Join(root, "guest-agent"), 0o755); err != nil {
			return err
		}
		// Not an installer: the fix copies it and never runs it.
		body := "fake QEMU guest agent installer for " + arch + "\n"
		if err := os.WriteFile(filepath.Join(root, "guest-agent", msi), []byte(body), 0o644); err != nil {
			return err
		}
	}
	for _, d := range virtioDrivers {
		for _, od := range osDirs {
			for _, arch := range arches {
				dir := filepath.Join(root, d.name, od, arch)
				if err := os.MkdirAll(dir, 0o755); err != nil {
					return err
				}
				nt := "NTamd64"
				machine := uint16(0x8664)
				if arch == "x86" {
					nt, machine = "NTx86", 0x14c
				}
				var models strings.Builder
				for _, id := range d.ids {
					fmt.Fprintf(&models, "%%%s.DeviceDesc%% = %s_inst, %s\n", d.service, d.service, id)
				}
				inf := fmt.Sprintf(`; %s.inf (fake virtio-win, for tests)
[Version]
Signature="$WINDOWS NT$"
Class=%s
ClassGuid=%s
Provider=%%RHEL%%
DriverVer = 01/15/2024,%s
CatalogFile=%s.cat

[Manufacturer]
%%RHEL%% = RHEL,%s

[RHEL.%s]
%s
[%s_inst.Services]
AddService = %s, 0x00000002, %s_Service_Inst

[Strings]
RHEL = "Red Hat, Inc."
%s.DeviceDesc = "Red Hat VirtIO %s"
`, d.service, d.class, d.classGUID, VirtioVersion, d.service, nt, nt, models.String(), d.service, d.service, d.service, d.service, d.name)
				files := map[string][]byte{d.service + ".inf": []byte(inf), d.service + ".sys": PE(machine), d.service + ".cat": []byte("catalog")}
				for n, b := range files {
					if err := os.WriteFile(filepath.Join(dir, n), b, 0o644); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
}

// ISO packs a tree into an ISO image as virtio-win.iso is packed (ISO 9660
// with Rock Ridge and Joliet), with xorriso.
func ISO(tree, iso string) error {
	out, err := exec.Command("xorriso", "-as", "mkisofs", "-quiet", "-R", "-J", "-joliet-long", "-V", "virtio-win", "-o", iso, tree).CombinedOutput()
	if err != nil {
		return fmt.Errorf("xorriso (run tools/setup if it is missing): %v: %s", err, out)
	}
	return nil
}
