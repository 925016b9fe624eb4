package fix

import (
	"context"
	"slices"
	"testing"

	"github.com/vmconv/terraform-provider-vmconv/engine/guest"
	"github.com/vmconv/terraform-provider-vmconv/engine/guest/guesttest"
)

func TestFor(t *testing.T) {
	for _, tc := range []struct {
		os   string
		want Runner
	}{
		{"linux", Linux},
		{"windows", Windows},
		{"freebsd", nil},
	} {
		t.Run(tc.os, func(t *testing.T) {
			r, why := For(&guest.Info{OS: tc.os})
			if r != tc.want {
				t.Fatalf("For(%s) = %v, want %v", tc.os, r, tc.want)
			}
			if r == nil && why == "" {
				t.Error("no runner and no reason")
			}
		})
	}
}

// TestEveryFixCanBeDisabled: what the engine accepts in fixes.disabled and
// what the provider's validator offers are one list, and it holds every
// runner's fixes (windows-virtio was once accepted by one and not the
// other).
func TestEveryFixCanBeDisabled(t *testing.T) {
	for _, r := range []Runner{Linux, Windows} {
		for _, n := range r.Names() {
			if !slices.Contains(Names(), n) {
				t.Errorf("%s is missing from Names()", n)
			}
			if err := (Options{Disabled: []string{n}}).Validate(); err != nil {
				t.Errorf("disabling %s: %v", n, err)
			}
		}
	}
	if err := (Options{Disabled: []string{"no-such-fix"}}).Validate(); err == nil {
		t.Error("an unknown fix name was accepted")
	}
}

func TestWindowsDisabledWritesNothing(t *testing.T) {
	m := guesttest.New(map[string]string{})
	rep, err := Windows.Run(context.Background(), &guest.Info{OS: "windows"}, m, Options{Disabled: []string{WindowsVirtio}})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Outcomes) != 1 || rep.Outcomes[0].Status != StatusDisabled || len(rep.Changes) != 0 {
		t.Fatalf("got %+v", rep)
	}
}
