package kvm

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/vmconv/terraform-provider-vmconv/engine/accel"
)

// A host whose capabilities list kvm but whose qemu aborts in KVM (this
// project's CI machines: "failed to set MSR 0x10a") must run the domain
// under TCG from then on; a start failure that is not KVM's must not turn
// into a silent retry.
func TestKVMFailureFallsBackToTCG(t *testing.T) {
	msr := errors.New("internal error: qemu unexpectedly closed the monitor: qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69\nqemu-system-x86_64: ../../target/i386/kvm/kvm.c:3183: kvm_buf_set_msrs: Assertion failed.")
	disk := errors.New("Cannot access storage file '/pool/guest.qcow2': No such file or directory")
	if !kvmFailed(msr) {
		t.Errorf("qemu's KVM abort not recognised: %v", msr)
	}
	for _, e := range []error{disk, errors.New("Cannot access storage file '/pool/kvm-web-overlay0.qcow2': Permission denied")} {
		if kvmFailed(e) {
			t.Errorf("a disk error taken for a KVM failure: %v", e)
		}
	}
	if !kvmFailed(errors.New("qemu-system-x86_64: Could not access KVM kernel module: Permission denied\nqemu-system-x86_64: failed to initialize kvm: Permission denied")) {
		t.Error("qemu's KVM initialisation failure not recognised")
	}

	m := New(Config{URI: "qemu+ssh://root@127.0.0.1:2222/system"}, Deps{
		Accel: func(context.Context) (accel.Result, error) { return accel.Result{Mode: accel.KVM}, nil },
	})
	if a, _ := m.accelFor(context.Background(), Request{}); a.Mode != accel.KVM {
		t.Fatalf("before any failure: %s, want kvm", a.Mode)
	}
	m.kvmUnusable(msr)
	a, _ := m.accelFor(context.Background(), Request{})
	if a.Mode != accel.TCG {
		t.Fatalf("after KVM failed: %s, want tcg", a.Mode)
	}
	for _, want := range []string{"qemu+ssh://root@127.0.0.1:2222/system", "failed to set MSR 0x10a", "TCG"} {
		if !strings.Contains(a.Reason, want) {
			t.Errorf("reason %q does not say %q", a.Reason, want)
		}
	}
}
