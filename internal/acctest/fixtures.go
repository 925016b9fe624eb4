package acctest

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// Variant is one guest the fixture builder makes.
type Variant struct {
	Disk      string `json:"disk"`
	Firmware  string `json:"firmware"`
	Network   string `json:"network"`
	Initramfs string `json:"initramfs"`
	RootUUID  string `json:"root_uuid"`
	EFILoader string `json:"efi_loader"`
}

// Fixtures are the guests tools/guests/build makes: real Debian systems in
// the state VMware leaves them in.
type Fixtures struct {
	Dir      string
	MAC      string             `json:"mac"`
	Kernel   string             `json:"kernel"`
	Variants map[string]Variant `json:"variants"`
	Stream   string             `json:"stream"`
	Chain    []string           `json:"chain"`
	Bad      map[string]string  `json:"bad"`
	VM       VM                 `json:"vm"`
	Span     SpanVM             `json:"span"`
}

// SpanVM is the two-disk VM whose root logical volume spans both disks:
// its .vmx, its disks in the VM's order, and the root file system's UUID.
type SpanVM struct {
	VMX      string   `json:"vmx"`
	Disks    []string `json:"disks"`
	RootUUID string   `json:"root_uuid"`
}

// VM is the two-disk VMware VM folder: its .vmx, its disks' newest files
// in the VM's order, and the UUID of /srv on the second disk.
type VM struct {
	VMX     string   `json:"vmx"`
	Disks   []string `json:"disks"`
	SrvUUID string   `json:"srv_uuid"`
}

// Path joins a fixture-relative path.
func (f *Fixtures) Path(rel string) string { return filepath.Join(f.Dir, rel) }

var (
	fxOnce sync.Once
	fx     *Fixtures
	fxErr  error
)

// RepoRoot is the repository's top folder.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// GuestFixtures builds the guest fixtures, or finds them in the cache,
// and describes them. Building needs root (debootstrap, chroot); make test
// builds them before the tests run.
func GuestFixtures(t testing.TB) *Fixtures {
	t.Helper()
	if _, isTest := t.(*testing.T); isTest && os.Getenv("TF_ACC") == "" {
		// As resource.Test does: acceptance tests run with TF_ACC set
		// (make test sets it), and the fixtures are theirs.
		t.Skip("TF_ACC is not set: acceptance tests skipped (make test sets it)")
	}
	fxOnce.Do(func() {
		cmd := exec.Command(filepath.Join(RepoRoot(), "tools", "guests", "build"))
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			fxErr = fmt.Errorf("tools/guests/build: %v", err)
			return
		}
		dir := strings.TrimSpace(string(out))
		if i := strings.LastIndex(dir, "\n"); i >= 0 {
			dir = dir[i+1:]
		}
		b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
		if err != nil {
			fxErr = err
			return
		}
		fx = &Fixtures{Dir: dir}
		fxErr = json.Unmarshal(b, fx)
	})
	if fxErr != nil {
		t.Fatalf("guest fixtures: %v", fxErr)
	}
	return fx
}
