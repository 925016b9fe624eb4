package testimg

import (
	"fmt"
	"os"
	"syscall"
	"testing"
)

// SmallFS mounts a tmpfs of size bytes at a new folder: a real file system
// that fills up, for the bounds that depend on free space, and where a
// regression fills the tmpfs and not the machine's disk.
func SmallFS(t testing.TB, size int64) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root; CI runs as root")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d", size)); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}

// AssertEmpty fails the test if dir holds anything, or takes more than
// 64 KiB on disk.
func AssertEmpty(t testing.TB, dir string) {
	t.Helper()
	if es, _ := os.ReadDir(dir); len(es) != 0 {
		var names []string
		for _, e := range es {
			names = append(names, e.Name())
		}
		t.Errorf("left behind in %s: %v", dir, names)
	}
	if du, err := DiskUsage(dir); err != nil || du > 64<<10 {
		t.Errorf("%s takes %d bytes on disk (%v)", dir, du, err)
	}
}
