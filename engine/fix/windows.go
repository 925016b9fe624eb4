package fix

import (
	"context"
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/engine/guest"
	"github.com/vmconv/terraform-provider-vmconv/engine/virtio"
)

// The Windows fix's name, as fixes.disabled takes it.
const WindowsVirtio = "windows-virtio"

// scsiAdapterClass is the device class of storage controllers.
const scsiAdapterClass = "{4D36E97B-E325-11CE-BFC1-08002BE10318}"

type windowsRunner struct{}

func (windowsRunner) Names() []string { return []string{WindowsVirtio} }

// Run makes a Windows guest boot on VirtIO: it copies viostor and
// vioscsi into System32\drivers and registers them as boot-start services
// with CriticalDeviceDatabase entries for their PCI IDs, stages NetKVM,
// Balloon and the guest agent for installation at the first administrator
// logon (RunOnce), and schedules VMware Tools' removal then. With
// o.DryRun, it records all of that and writes nothing.
func (windowsRunner) Run(ctx context.Context, info *guest.Info, fsys guest.FS, o Options) (*Report, error) {
	w, dry := info.Windows, o.DryRun
	reg, _ := fsys.(guest.Registry)
	res := &Report{Backups: map[string][]byte{}}
	for _, d := range o.Disabled {
		if d == WindowsVirtio {
			res.Outcomes = append(res.Outcomes, Outcome{WindowsVirtio, StatusDisabled, "turned off in fixes.disabled"})
			return res, nil
		}
	}
	if w == nil || reg == nil {
		return nil, fault.New(fault.InspectionFailed, "", "the Windows guest's registry was not inspected")
	}
	major, minor := 0, 0
	fmt.Sscanf(info.Version, "%d.%d", &major, &minor)
	src, err := virtio.Open(o.VirtioWin)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	drivers, err := virtio.Find(src, append(append([]string{}, virtio.Storage...), virtio.Staged...),
		virtio.OSDirs(major, minor, w.Build, w.InstallationType), info.Arch)
	if err != nil {
		return nil, err
	}
	res.Drivers = drivers
	if dry {
		fsys = newDryFS(fsys)
	}
	c := &Context{Ctx: ctx, Info: info, FS: fsys, Opts: o, softFail: map[string]bool{}, fix: WindowsVirtio}
	record := func(action, p, reason string) {
		c.changes = append(c.changes, guest.Change{Fix: WindowsVirtio, Action: action, Path: p, Reason: reason})
	}
	sysroot := w.SystemRoot
	driversDir := path.Join(sysroot, "System32", "drivers")

	// Hives are backed up before any edit.
	for _, h := range []string{w.SystemHive, w.SoftwareHive} {
		b, err := fsys.ReadFile(h)
		if err != nil {
			return nil, fault.Wrap(fault.FixFailed, h, err, "cannot read the hive to back it up")
		}
		res.Backups[path.Base(h)] = b
	}

	ccs := w.CurrentControlSet
	var sysEdits []guest.RegEdit
	for _, d := range drivers[:len(virtio.Storage)] {
		if d.SYS == "" {
			return nil, fault.New(fault.DriversMissing, src.Path, "the %s driver in %s has no .sys file", d.Name, d.Dir).
				WithHint("Use a complete virtio-win release.")
		}
		sys, err := src.ReadFile(d.SYS)
		if err != nil {
			return nil, fault.Wrap(fault.DriversMissing, src.Path, err, "cannot read %s", d.SYS)
		}
		dst := path.Join(driversDir, d.Service+".sys")
		if err := c.Write(dst, sys, 0o644, fmt.Sprintf("%s %s (%s/%s) for the VirtIO disk controller", d.Name, d.Version, d.OSDir, d.Arch)); err != nil {
			return nil, err
		}
		svc := ccs + `\Services\` + d.Service
		set := func(name string, t int64, data []byte, shown string) {
			sysEdits = append(sysEdits, guest.RegEdit{Key: svc, Value: name, Type: t, Data: data})
			record("registry", `HKLM\SYSTEM\`+svc+`\`+name, "= "+shown)
		}
		set("Type", guest.RegDWORD, guest.DWORD(1), "1 (kernel driver)")
		set("Start", guest.RegDWORD, guest.DWORD(0), "0 (BOOT_START)")
		set("ErrorControl", guest.RegDWORD, guest.DWORD(1), "1 (normal)")
		set("Group", guest.RegSZ, guest.SZ("SCSI miniport"), `"SCSI miniport"`)
		set("ImagePath", guest.RegExpandSZ, guest.SZ(`system32\drivers\`+d.Service+".sys"), `"system32\drivers\`+d.Service+`.sys"`)
		if _, ok, _ := reg.HiveKey(w.SystemHive, svc+`\StartOverride`); ok {
			sysEdits = append(sysEdits, guest.RegEdit{Key: svc + `\StartOverride`, DeleteKey: true})
			record("registry-delete", `HKLM\SYSTEM\`+svc+`\StartOverride`, "it would stop the driver from starting at boot")
		}
		for _, id := range d.HardwareIDs {
			k := ccs + `\Control\CriticalDeviceDatabase\` + strings.ToLower(strings.ReplaceAll(id, `\`, "#"))
			sysEdits = append(sysEdits,
				guest.RegEdit{Key: k, Value: "Service", Type: guest.RegSZ, Data: guest.SZ(d.Service)},
				guest.RegEdit{Key: k, Value: "ClassGUID", Type: guest.RegSZ, Data: guest.SZ(scsiAdapterClass)})
			record("registry", `HKLM\SYSTEM\`+k, fmt.Sprintf("Service = %q, ClassGUID = %s: boot the disk controller with %s", d.Service, scsiAdapterClass, d.Service))
		}
	}

	// NetKVM and Balloon: copied, and installed by Plug and Play at first
	// boot through pnputil.
	stage := path.Join("/Program Files", "vmconv", "virtio")
	for _, d := range drivers[len(virtio.Storage):] {
		files, err := src.ReadDir(d.Dir)
		if err != nil {
			return nil, fault.Wrap(fault.DriversMissing, src.Path, err, "cannot read the %s driver in %s", d.Name, d.Dir)
		}
		if !dry {
			if err := mkdirAll(fsys, path.Join(stage, d.Name)); err != nil {
				return nil, fault.Wrap(fault.FixFailed, stage, err, "cannot create the staging folder")
			}
		}
		names := make([]string, 0, len(files))
		for name := range files {
			names = append(names, name)
		}
		sort.Strings(names) // the plan and the apply list them in one order
		for _, name := range names {
			if err := c.Write(path.Join(stage, d.Name, name), files[name], 0o644, fmt.Sprintf("%s %s staged for Plug and Play at the first logon", d.Name, d.Version)); err != nil {
				return nil, err
			}
		}
	}
	var swEdits []guest.RegEdit
	runOnce := `Microsoft\Windows\CurrentVersion\RunOnce`
	pnp := `cmd.exe /c pnputil /add-driver "C:\Program Files\vmconv\virtio\*.inf" /subdirs /install`
	swEdits = append(swEdits, guest.RegEdit{Key: runOnce, Value: "vmconv-virtio-drivers", Type: guest.RegSZ, Data: guest.SZ(pnp)})
	record("registry", `HKLM\SOFTWARE\`+runOnce+`\vmconv-virtio-drivers`, "= "+pnp+": install NetKVM and Balloon at the first administrator logon")

	// The guest agent: its MSI, installed quietly at the first logon.
	if agent, msi, ok := virtio.FindAgent(src, info.Arch); ok {
		res.Agent = agent
		dir := path.Join(stage, "guest-agent")
		if !dry {
			if err := mkdirAll(fsys, dir); err != nil {
				return nil, fault.Wrap(fault.FixFailed, dir, err, "cannot create the staging folder")
			}
		}
		dst := path.Join(dir, path.Base(agent.File))
		if err := c.Write(dst, msi, 0o644, fmt.Sprintf("the QEMU guest agent (%s, sha256 %s) staged for the first logon", agent.File, agent.SHA256[:12])); err != nil {
			return nil, err
		}
		cmd := `msiexec.exe /i "C:\Program Files\vmconv\virtio\guest-agent\` + path.Base(agent.File) + `" /qn /norestart`
		swEdits = append(swEdits, guest.RegEdit{Key: runOnce, Value: "vmconv-qemu-guest-agent", Type: guest.RegSZ, Data: guest.SZ(cmd)})
		record("registry", `HKLM\SOFTWARE\`+runOnce+`\vmconv-qemu-guest-agent`, "= "+cmd+": install the QEMU guest agent at the first administrator logon")
	} else {
		c.Warn("%s has no guest agent installer for %s (guest-agent/qemu-ga-*.msi): the guest boots, but without the QEMU guest agent", src.Path, virtio.ArchDir(info.Arch))
	}
	if w.VMwareTools != "" && w.VMwareTools != "installed" && !o.KeepVMwareTools {
		cmd := w.VMwareTools
		if strings.HasPrefix(strings.ToLower(cmd), "msiexec") {
			cmd += " /qn /norestart"
		}
		swEdits = append(swEdits, guest.RegEdit{Key: runOnce, Value: "vmconv-remove-vmware-tools", Type: guest.RegSZ, Data: guest.SZ(cmd)})
		record("registry", `HKLM\SOFTWARE\`+runOnce+`\vmconv-remove-vmware-tools`, "= "+cmd+": remove VMware Tools at the first administrator logon")
	}

	if !dry {
		if err := reg.HiveEdit(w.SystemHive, sysEdits); err != nil {
			return nil, fault.Wrap(fault.FixFailed, w.SystemHive, err, "cannot edit the SYSTEM hive")
		}
		if err := reg.HiveEdit(w.SoftwareHive, swEdits); err != nil {
			return nil, fault.Wrap(fault.FixFailed, w.SoftwareHive, err, "cannot edit the SOFTWARE hive")
		}
	}
	status := StatusApplied
	if dry {
		status = StatusPlanned
	}
	var names []string
	for _, d := range drivers {
		names = append(names, d.Name+" "+d.Version)
	}
	res.Outcomes = append(res.Outcomes, Outcome{WindowsVirtio, status, "VirtIO drivers: " + strings.Join(names, ", ")})
	res.Changes, res.Warnings = c.changes, c.warnings
	return res, nil
}

func mkdirAll(fsys guest.FS, p string) error {
	if p == "/" || fsys.Exists(p) {
		return nil
	}
	if err := mkdirAll(fsys, path.Dir(p)); err != nil {
		return err
	}
	return fsys.Mkdir(p, 0o755)
}
