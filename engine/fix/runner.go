package fix

import (
	"context"
	"slices"

	"github.com/vmconv/terraform-provider-vmconv/engine/guest"
	"github.com/vmconv/terraform-provider-vmconv/engine/virtio"
)

// Runner is the fixes of one family of guests, as virt-v2v's convert_linux
// and convert_windows share one module type. The engine picks one with For,
// in one place, for the FIX stage and for the plan's dry run alike.
type Runner interface {
	// Names lists the fixes it runs, as fixes.disabled takes them.
	Names() []string
	// Run applies the fixes to a guest whose root is mounted, or with
	// o.DryRun records every change they would make and writes nothing.
	Run(ctx context.Context, info *guest.Info, fsys guest.FS, o Options) (*Report, error)
}

// Report is one run of a Runner.
type Report struct {
	Result
	// Drivers and Agent are what a Windows guest receives.
	Drivers []virtio.Driver
	Agent   *virtio.Agent
	// Backups are a Windows guest's hives as they were before any edit.
	Backups map[string][]byte
}

var runners = map[string]Runner{"linux": Linux, "windows": Windows}

// Linux and Windows are the runners.
var (
	Linux   Runner = linuxRunner{}
	Windows Runner = windowsRunner{}
)

// For returns the runner for the guest's operating system, or, when there
// is none, why.
func For(info *guest.Info) (Runner, string) {
	if r, ok := runners[info.OS]; ok {
		return r, ""
	}
	return nil, "offline fixes for " + info.OS + " guests are not built"
}

// Names lists every fix of every runner, in a fixed order.
func Names() []string {
	out := append([]string{}, Linux.Names()...)
	for _, n := range Windows.Names() {
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}
