package vmx

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/vmconv/terraform-provider-vmconv/engine/guest"
)

func TestESXiVM(t *testing.T) {
	b, err := os.ReadFile("testdata/esxi.vmx")
	if err != nil {
		t.Fatal(err)
	}
	f, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	vm, err := f.VM()
	if err != nil {
		t.Fatal(err)
	}
	if vm.Name != "web" || vm.GuestOS != "debian11-64" || vm.Firmware != "uefi" || vm.MemoryMiB != 4096 || vm.CPUs != 2 {
		t.Errorf("VM %+v", vm)
	}
	got := ""
	for _, d := range vm.Disks {
		got += fmt.Sprintf("%s=%s(%s) ", d.Device, d.FileName, d.Adapter)
	}
	if got != "scsi0:0=web-000001.vmdk(pvscsi) scsi0:1=web_1.vmdk(pvscsi) " {
		t.Errorf("disks %s", got)
	}
	if len(vm.Skipped) != 1 || !strings.Contains(vm.Skipped[0], "sata0:0 (CD-ROM)") {
		t.Errorf("skipped %v", vm.Skipped)
	}
	if len(vm.NICs) != 2 || vm.NICs[0].MAC != "00:50:56:8a:3c:1e" || vm.NICs[0].Model != "vmxnet3" ||
		vm.NICs[1].MAC != "00:50:56:00:00:01" || vm.NICs[1].Network != `Backend "DMZ"` {
		t.Errorf("NICs %+v", vm.NICs)
	}
}

func TestDiskOrder(t *testing.T) {
	f, err := Parse([]byte(`ide0:0.present = "TRUE"
ide0:0.fileName = "d.vmdk"
sata0.present = "TRUE"
sata0:1.present = "TRUE"
sata0:1.fileName = "c.vmdk"
scsi1.present = "TRUE"
scsi1:0.present = "TRUE"
scsi1:0.fileName = "b.vmdk"
scsi0.present = "TRUE"
scsi0.virtualDev = "lsilogic"
scsi0:10.present = "TRUE"
scsi0:10.fileName = "a2.vmdk"
scsi0:2.present = "TRUE"
scsi0:2.fileName = "a1.vmdk"
scsi0:3.present = "FALSE"
scsi0:3.fileName = "gone.vmdk"
`))
	if err != nil {
		t.Fatal(err)
	}
	vm, err := f.VM()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range vm.Disks {
		names = append(names, d.FileName)
	}
	if strings.Join(names, ",") != "a1.vmdk,a2.vmdk,b.vmdk,c.vmdk,d.vmdk" {
		t.Errorf("order %v", names)
	}
	if vm.Disks[0].Adapter != "lsilogic" || vm.Disks[2].Adapter != "buslogic" || vm.Disks[3].Adapter != "ahci" {
		t.Errorf("adapters %+v", vm.Disks)
	}
	if vm.Firmware != "bios" || vm.CPUs != 1 {
		t.Errorf("defaults: %+v", vm)
	}
}

// TestHostile: every way a .vmx can be wrong is refused with the line.
func TestHostile(t *testing.T) {
	var many strings.Builder
	many.WriteString("scsi0.present = \"TRUE\"\nscsi1.present = \"TRUE\"\nscsi2.present = \"TRUE\"\nscsi3.present = \"TRUE\"\n")
	for i := 0; i < 10000; i++ {
		c, u := i/64, i%64
		fmt.Fprintf(&many, "scsi%d:%d.present = \"TRUE\"\nscsi%d:%d.fileName = \"d%d.vmdk\"\n", c, u, c, u, i)
	}
	for _, tc := range []struct {
		name, vmx, want string
		line            int
	}{
		{"duplicate key in another case", "memSize = \"1024\"\nMEMSIZE = \"2048\"\n", "set again (first on line 1)", 2},
		{"two units on one slot", "scsi0.present = \"TRUE\"\nscsi0:0.present = \"TRUE\"\nscsi0:0.fileName = \"a.vmdk\"\nSCSI0:0.fileName = \"b.vmdk\"\n", "set again", 4},
		{"two disks on one file", "scsi0.present = \"TRUE\"\nscsi0:0.present = \"TRUE\"\nscsi0:0.fileName = \"a.vmdk\"\nscsi0:1.present = \"TRUE\"\nscsi0:1.fileName = \"a.vmdk\"\n", "both name the file", 5},
		{"not UTF-8", "displayName = \"caf\xe9\"\n", "not valid UTF-8", 1},
		{"escaped not UTF-8", "displayName = \"caf|e9\"\n", "not valid UTF-8", 1},
		{"other encoding", ".encoding = \"windows-1252\"\n", "encoding", 1},
		{"unquoted", "memSize = 1024\n", "not quoted", 1},
		{"quote inside", "displayName = \"a\"b\"\n", "unescaped quote", 1},
		{"no equals", "this is not a vmx\n", "expected key", 1},
		{"bad key", "mem size = \"1\"\n", "not a configuration key", 1},
		{"NUL", "memSize = \"1\"\x00\n", "NUL", 0},
		{"unit out of range", "scsi0.present = \"TRUE\"\nscsi0:64.present = \"TRUE\"\n", "cannot have", 2},
		{"controller out of range", "scsi4:0.present = \"TRUE\"\n", "cannot have", 1},
		{"controller unit", "scsi0.present = \"TRUE\"\nscsi0:7.present = \"TRUE\"\nscsi0:7.fileName = \"a.vmdk\"\n", "controller's own unit", 3},
		{"controller missing", "scsi0:0.present = \"TRUE\"\nscsi0:0.fileName = \"a.vmdk\"\n", "not present", 2},
		{"raw disk", "scsi0.present = \"TRUE\"\nscsi0:0.present = \"TRUE\"\nscsi0:0.deviceType = \"rawDisk\"\nscsi0:0.fileName = \"a.vmdk\"\n", "physical disk", 3},
		{"no file", "scsi0.present = \"TRUE\"\nscsi0:0.present = \"TRUE\"\n", "names no file", 2},
		{"bad firmware", "firmware = \"coreboot\"\n", "neither bios nor efi", 1},
		{"bad memory", "memSize = \"-1\"\n", "whole number", 1},
		{"bad MAC", "ethernet0.present = \"TRUE\"\nethernet0.addressType = \"static\"\nethernet0.address = \"00:50:56\"\n", "not a MAC", 3},
		{"NIC out of range", "ethernet10.present = \"TRUE\"\n", "at most 10", 1},
		{"10,000 disks", many.String(), "more than 20000 keys", 0},
		{"513 disks", disks(513), "more than 512 disks", 0},
		{"too big", strings.Repeat("# padding\n", MaxSize/10+1), "more than", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Parse([]byte(tc.vmx))
			if err == nil {
				_, err = f.VM()
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("got %v, want a vmx.Error", err)
			}
			if !strings.Contains(e.Msg, tc.want) {
				t.Errorf("%q lacks %q", e.Msg, tc.want)
			}
			if tc.line != 0 && e.Line != tc.line {
				t.Errorf("line %d, want %d", e.Line, tc.line)
			}
		})
	}
}

// disks writes a .vmx with n disks spread over every bus.
func disks(n int) string {
	var b strings.Builder
	for _, bus := range []string{"scsi", "sata", "nvme"} {
		for c := 0; c < 4; c++ {
			fmt.Fprintf(&b, "%s%d.present = \"TRUE\"\n", bus, c)
		}
	}
	i := 0
	for _, bus := range []string{"scsi", "sata", "nvme"} {
		for c := 0; c < 4; c++ {
			for u := 0; u < limits[bus].units && i < n; u++ {
				if bus == "scsi" && u == 7 {
					continue
				}
				fmt.Fprintf(&b, "%s%d:%d.present = \"TRUE\"\n%s%d:%d.fileName = \"d%d.vmdk\"\n", bus, c, u, bus, c, u, i)
				i++
			}
		}
	}
	return b.String()
}

// FuzzParse: whatever the bytes, Parse and VM return or refuse without
// panicking, within the bounds, and what they accept is consistent.
func FuzzParse(f *testing.F) {
	b, _ := os.ReadFile("testdata/esxi.vmx")
	f.Add(b)
	f.Add([]byte("scsi0.present = \"TRUE\"\nscsi0:0.present = \"TRUE\"\nscsi0:0.fileName = \"a|22b.vmdk\"\n"))
	f.Add([]byte("ethernet0.present = \"TRUE\"\nethernet0.generatedAddress = \"00:0C:29:aa:bb:cc\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse(data)
		if err != nil {
			return
		}
		if file.Len() > MaxKeys {
			t.Fatalf("%d keys accepted", file.Len())
		}
		vm, err := file.VM()
		if err != nil {
			return
		}
		if len(vm.Disks) > MaxDisks || len(vm.NICs) > MaxNICs || vm.CPUs < 1 || vm.MemoryMiB < 0 {
			t.Fatalf("out of bounds: %d disks, %d NICs, %d CPUs, %d MiB", len(vm.Disks), len(vm.NICs), vm.CPUs, vm.MemoryMiB)
		}
		seen := map[string]bool{}
		for i, d := range vm.Disks {
			if d.FileName == "" || seen[d.FileName] || seen[d.Device] {
				t.Fatalf("disk %d: %+v (file or slot reused or empty)", i, d)
			}
			seen[d.FileName], seen[d.Device] = true, true
			if i > 0 {
				p := vm.Disks[i-1]
				if (guest.DiskSlot{Bus: p.Bus, Controller: p.Controller, Unit: p.Unit}).Compare(guest.DiskSlot{Bus: d.Bus, Controller: d.Controller, Unit: d.Unit}) >= 0 {
					t.Fatalf("disks out of order: %s before %s", p.Device, d.Device)
				}
			}
		}
		for _, n := range vm.NICs {
			if !macRE.MatchString(n.MAC) {
				t.Fatalf("MAC %q accepted", n.MAC)
			}
		}
	})
}
