package inspect

import (
	"sort"
	"strings"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/engine/guest"
)

// windows reads a Windows guest's registry: its build, its current control
// set, its storage and network drivers, VMware Tools and hibernation.
func windows(s guest.FS, info *guest.Info) error {
	reg, ok := s.(guest.Registry)
	if !ok {
		return nil
	}
	w, err := reg.WindowsInfo(info.Root)
	if err != nil {
		return fault.Wrap(fault.InspectionFailed, "", err, "cannot locate the Windows installation's registry")
	}
	win := &guest.Windows{SystemRoot: w.SystemRoot, CurrentControlSet: w.CurrentControlSet, SystemHive: w.SystemHive, SoftwareHive: w.SoftwareHive}
	info.Windows = win
	if w.SystemHive == "" || w.CurrentControlSet == "" {
		return fault.New(fault.InspectionFailed, "", "the Windows installation has no readable SYSTEM hive").
			WithHint("The hive may be damaged: run chkdsk and a registry check in the VM before converting.")
	}
	if k, ok, err := reg.HiveKey(w.SoftwareHive, `Microsoft\Windows NT\CurrentVersion`); err != nil {
		return corruptHive(w.SoftwareHive, err)
	} else if ok {
		win.Build = k.Values["CurrentBuildNumber"].String()
		win.InstallationType = k.Values["InstallationType"].String()
	}
	services, _, err := reg.HiveSubkeys(w.SystemHive, w.CurrentControlSet+`\Services`)
	if err != nil {
		return corruptHive(w.SystemHive, err)
	}
	for name, k := range services {
		group := strings.ToLower(k.Values["Group"].String())
		start, hasStart := k.Values["Start"].DWORD()
		switch {
		case strings.Contains(group, "scsi miniport") && hasStart && start == 0:
			win.StorageDrivers = append(win.StorageDrivers, name)
		case group == "ndis":
			win.NetworkDrivers = append(win.NetworkDrivers, name)
		}
		if strings.EqualFold(name, "VMTools") && win.VMwareTools == "" {
			win.VMwareTools = "installed"
		}
	}
	if apps, _, err := reg.HiveSubkeys(w.SoftwareHive, `Microsoft\Windows\CurrentVersion\Uninstall`); err == nil {
		for _, k := range apps {
			if strings.Contains(k.Values["DisplayName"].String(), "VMware Tools") {
				win.VMwareTools = k.Values["UninstallString"].String()
			}
		}
	}
	if win.VMwareTools != "" {
		info.HypervisorTools = append(info.HypervisorTools, "vmware-tools")
	}
	sort.Strings(win.StorageDrivers)
	sort.Strings(win.NetworkDrivers)
	if k, ok, _ := reg.HiveKey(w.SystemHive, w.CurrentControlSet+`\Control\Session Manager\Power`); ok {
		if v, ok := k.Values["HiberbootEnabled"].DWORD(); ok && v == 1 {
			win.Hibernation = true
		}
	}
	if s.IsFile("/hiberfil.sys") {
		win.Hibernation = true
	}
	if win.Hibernation {
		info.Warnings = append(info.Warnings, "Windows Fast Startup or hibernation is on: if the VM was hibernated rather than shut down, "+
			"its NTFS volume holds unsaved state; shut Windows down fully (shutdown /s /t 0) before converting")
	}
	return nil
}

func corruptHive(hive string, err error) error {
	return fault.Wrap(fault.InspectionFailed, hive, err, "the registry hive cannot be read: it is damaged").
		WithHint("Repair the guest's registry (boot it on VMware and run chkdsk /f and sfc /scannow), then convert again. Nothing was written.")
}
