// Command accel prints the accelerator the engine would use here (kvm or
// tcg) and why, for scripts such as the guest builder.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/vmconv/terraform-provider-vmconv/engine/accel"
)

func main() {
	cache := flag.String("cache", "", "cache folder (default: the user cache folder)")
	why := flag.Bool("why", false, "print the reason on stderr")
	flag.Parse()
	if *cache == "" {
		if d, err := os.UserCacheDir(); err == nil {
			*cache = filepath.Join(d, "vmconv")
		}
	}
	r, err := accel.Resolve(context.Background(), os.Getenv("VMCONV_ACCEL"), accel.Options{CacheDir: *cache})
	if err != nil {
		fmt.Fprintln(os.Stderr, "accel:", err)
		os.Exit(1)
	}
	if *why {
		fmt.Fprintf(os.Stderr, "accel: %s (%s)\n", r.Mode, r.Reason)
	}
	fmt.Println(r.Mode)
}
