package engine

import (
	"testing"

	"github.com/vmconv/terraform-provider-vmconv/engine/fix"
	"github.com/vmconv/terraform-provider-vmconv/engine/guest"
)

func TestPlanGuestKeyCoversWhatDecidesThePreview(t *testing.T) {
	base := Request{Fixes: FixSpec{Enabled: true}}
	k := planGuestKey("v1:aa", base)
	if k != planGuestKey("v1:aa", base) {
		t.Fatal("the key is not stable")
	}
	other := []struct {
		name string
		fp   string
		req  Request
	}{
		{"fingerprint", "v1:bb", base},
		{"root", "v1:aa", Request{Inspect: InspectSpec{Root: "/dev/sda2"}, Fixes: base.Fixes}},
		{"fixes off", "v1:aa", Request{}},
		{"a fix disabled", "v1:aa", Request{Fixes: FixSpec{Enabled: true, Options: fix.Options{Disabled: []string{"grub"}}}}},
		{"fstab mode", "v1:aa", Request{Fixes: FixSpec{Enabled: true, Options: fix.Options{FstabMode: fix.FstabByPathOnly}}}},
	}
	for _, o := range other {
		if planGuestKey(o.fp, o.req) == k {
			t.Errorf("changing the %s reuses the cached preview", o.name)
		}
	}
	// The output and the boot test do not change what the guest needs.
	same := base
	same.Output = OutputSpec{Path: "/x.qcow2"}
	same.BootTest.Enabled = true
	if planGuestKey("v1:aa", same) != k {
		t.Error("output or boot test options invalidate the inspection cache")
	}
}

func TestCachedGuestPlanRoundTrip(t *testing.T) {
	e, err := New(Config{WorkDir: t.TempDir(), CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := e.cachedGuestPlan("k"); ok {
		t.Fatal("empty cache hit")
	}
	in := &GuestPlan{How: "inspected", Guest: &guest.Info{OS: "linux", Firmware: "uefi"},
		Outcomes: []fix.Outcome{{Name: "grub", Status: fix.StatusPlanned}, {Name: "fstab", Status: fix.StatusNotApplicable}}}
	if err := e.storeGuestPlan("k", in); err != nil {
		t.Fatal(err)
	}
	out, ok := e.cachedGuestPlan("k")
	if !ok || out.How != "cached" || out.Guest.Firmware != "uefi" {
		t.Fatalf("cache returned %+v, %v", out, ok)
	}
	if got := out.PlannedFixes(); len(got) != 1 || got[0] != "grub" {
		t.Errorf("planned fixes %v", got)
	}
}
