package kvm

import (
	"context"
	"fmt"
	"os"

	"github.com/vmconv/terraform-provider-vmconv/engine/boottest"
	"github.com/vmconv/terraform-provider-vmconv/engine/diskformat"
	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/engine/guest"
)

// Check checks what can be checked before anything is defined: the
// name is free (unless the caller manages it), the firmware exists.
func (m *Manager) Check(ctx context.Context, req Request, managed bool) error {
	// A disk that does not exist yet may be a conversion in the same plan.
	if err := checkDisks(req, true); err != nil {
		return err
	}
	if m.Firmware(req) == "uefi" && !req.remote() {
		if _, _, err := (boottest.Firmware{Dir: m.cfg.FirmwareDir}).Paths(); err != nil {
			return err
		}
	}
	// The guest is known at plan time when the disk's conversion already
	// ran; otherwise CreateDomain checks again.
	var info *guest.Info
	if len(req.Disks) > 0 {
		if c, ok := m.conversion(req.Disks[0].Ref()); ok {
			info = c.Guest
		}
	}
	if err := checkBootPhases(req, info); err != nil {
		return err
	}
	if err := checkBootNetwork(req); err != nil {
		return err
	}
	hv, err := m.hypervisor()
	if err != nil {
		return err
	}
	if !managed {
		if info, ok, err := hv.Lookup(req.Name); err != nil {
			return fault.Wrap(fault.HypervisorFailed, req.Name, err, "cannot look the domain up")
		} else if ok {
			return fault.New(fault.DomainExists, req.Name, "a domain named %q already exists (UUID %s) and this resource does not manage it", req.Name, info.UUID).
				WithHint("Choose another name, or bring the existing domain under Terraform with terraform import.")
		}
	}
	return m.checkDomainAccess(ctx, req, hv)
}

// checkBootNetwork refuses a boot test that requires the network of a
// domain with no network interface: it could only fail, after the whole
// boot, and for no fault of the guest.
func checkBootNetwork(req Request) error {
	if !req.BootTest.Enabled || !req.Running || !req.BootTest.RequireNetwork || req.BootTest.SuccessPattern != "" || len(req.NICs) > 0 {
		return nil
	}
	return fault.New(fault.BootTestImpossible, req.Name, "boot_test.require_network is true, but the domain has no network interface, so no address can come up").
		WithHint("Add a network interface (network_interfaces = [{ network = \"default\" }], or { user = true }), or set boot_test.require_network = false to test the boot without network.")
}

// checkBootPhases refuses an initial_boot_bus that would be ignored: the
// switch to the disks' own bus happens when the first boot's test passes, so
// there must be a boot test to watch. Booting straight on the final bus
// instead would be the very boot the user asked to avoid.
func checkBootPhases(req Request, info *guest.Info) error {
	if req.InitialBootBus == "" {
		return nil
	}
	var why, hint string
	switch {
	case !req.Running:
		why, hint = "running is false", "Set running = true, or remove initial_boot_bus."
	case !req.BootTest.Enabled:
		why, hint = "the boot test is disabled", "Enable boot_test, or remove initial_boot_bus."
	case len(req.Disks) == 0:
		why, hint = "the domain has no disks", "Remove initial_boot_bus."
	case info != nil && info.HasOS() && info.OS != "linux" && req.BootTest.SuccessPattern == "":
		why = fmt.Sprintf("the guest is %s: vmconv plants its boot marker in Linux guests only, and no boot_test.success_pattern says what this guest writes to its serial console when it is up", info.OS)
		hint = "Set boot_test.success_pattern to a line the guest writes to its first serial port once booted (Windows with Emergency Management Services, bcdedit /ems on, writes \"SAC>\"), " +
			"or remove initial_boot_bus: the windows-virtio fix registers viostor and vioscsi as boot-start drivers, so the first boot can be on virtio."
	default:
		return nil
	}
	return fault.New(fault.BootPhases, req.Name, "initial_boot_bus = %q switches buses when the first boot's test passes, but %s", req.InitialBootBus, why).WithHint("%s", hint)
}

// checkDisks refuses disks that are missing or not images, before
// anything is defined.
func checkDisks(req Request, missingOK bool) error {
	if len(req.Disks) == 0 {
		return fault.New(fault.InvalidRequest, req.Name, "the domain has no disks").WithHint("Give it at least one entry in disks.")
	}
	for i, d := range req.Disks {
		if (d.Pool != "") != (req.Disks[0].Pool != "") || (d.Pool != "" && d.Source != "") {
			return fault.New(fault.InvalidRequest, req.Name, "disk %d of the domain mixes a file and a pool volume", i).
				WithHint("Give every disk a pool and a volume (disks on the libvirt host), or every disk a path (files on this machine).")
		}
		if d.Pool != "" {
			continue // checked through libvirt when the domain is created
		}
		if _, err := os.Stat(d.Source); err != nil {
			if missingOK {
				continue
			}
			return fault.New(fault.SourceMissing, d.Source, "disk %d of the domain does not exist", i).
				WithHint("Point disks[%d].path at a converted image (vmconv_disk_conversion.<name>.output.path).", i)
		}
		if _, ok, _ := detectFormat(d.Source); !ok {
			return fault.New(fault.UnknownFormat, d.Source, "disk %d of the domain is not a recognisable disk image", i).
				WithHint("Point disks[%d].path at a converted image (vmconv_disk_conversion.<name>.output.path).", i)
		}
	}
	return nil
}

func detectFormat(path string) (diskformat.Format, bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", false, err
	}
	defer f.Close()
	d, ok, err := diskformat.Detect(f)
	return d.Format, ok, err
}
