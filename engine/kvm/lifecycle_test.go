package kvm

import (
	"strings"
	"testing"

	"github.com/vmconv/terraform-provider-vmconv/engine/boottest"
	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/engine/guest"
)

// initial_boot_bus is refused whenever there would be no boot test to end
// its first phase (no marker and no success pattern), instead of being
// quietly skipped.
func TestCheckBootPhases(t *testing.T) {
	ok := Request{Name: "d", Running: true, BootTest: boottest.Spec{Enabled: true}, InitialBootBus: "sata", Disks: []DiskRequest{{Source: "/x.qcow2"}}}
	linux := &guest.Info{OS: "linux", Root: "/dev/sda1"}
	windows := &guest.Info{OS: "windows", Root: "/dev/sda2"}
	if !linux.HasOS() || !windows.HasOS() {
		t.Fatal("fixtures lack an OS")
	}
	for _, c := range []struct {
		name string
		mut  func(*Request)
		info *guest.Info
		want string // "" when allowed
	}{
		{"linux", func(*Request) {}, linux, ""},
		{"unknown yet", func(*Request) {}, nil, ""},
		{"no initial bus", func(r *Request) { r.InitialBootBus = ""; r.BootTest.Enabled = false }, windows, ""},
		{"windows", func(*Request) {}, windows, "the guest is windows"},
		{"windows with a pattern", func(r *Request) { r.BootTest.SuccessPattern = "SAC>" }, windows, ""},
		{"not running", func(r *Request) { r.Running = false }, linux, "running is false"},
		{"no boot test", func(r *Request) { r.BootTest.Enabled = false }, linux, "boot test is disabled"},
	} {
		r := ok
		c.mut(&r)
		err := checkBootPhases(r, c.info)
		if c.want == "" {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			continue
		}
		fe, isFault := fault.As(err)
		if !isFault || fe.Code != fault.BootPhases || !strings.Contains(err.Error(), c.want) || fe.Hint == "" {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}
