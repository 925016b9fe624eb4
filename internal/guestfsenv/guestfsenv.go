// Package guestfsenv is how tests run libguestfs tools (guestfish,
// virt-inspector, virt-win-reg): with the direct backend, and under
// software emulation where the engine's probe found KVM unusable.
package guestfsenv

import (
	"context"
	"os"
	"path/filepath"

	"github.com/vmconv/terraform-provider-vmconv/engine/accel"
)

// Mode is the engine's cached verdict on this machine: KVM or TCG.
func Mode() accel.Mode {
	cache, _ := os.UserCacheDir()
	r, err := accel.Resolve(context.Background(), os.Getenv("VMCONV_ACCEL"), accel.Options{CacheDir: filepath.Join(cache, "vmconv")})
	if err != nil {
		return accel.TCG
	}
	return r.Mode
}

// Env is the environment for a libguestfs tool.
func Env() []string {
	return append(append(os.Environ(), "LIBGUESTFS_BACKEND=direct"), accel.GuestfsEnv(Mode())...)
}
