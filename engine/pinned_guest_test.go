package engine_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmconv/terraform-provider-vmconv/engine"
	"github.com/vmconv/terraform-provider-vmconv/internal/acctest"
	"github.com/vmconv/terraform-provider-vmconv/internal/opentrace"
	"github.com/vmconv/terraform-provider-vmconv/internal/testimg"
)

// TestGuestChainOpensOnlyValidatedFiles converts a real guest whose top
// layer is a qcow2 naming its VMDK parent by an absolute path outside the
// source folder, where a file of that name holds a secret. The plan reads
// the same-named parent beside the disk instead, and says so. Every qemu
// of the apply is watched (qemu-img under strace; the libguestfs appliance
// that inspects the guest and dry-runs the fixes through the pinned chain,
// through fanotify): none may open the outside file, and the secret must
// not reach the output.
func TestGuestChainOpensOnlyValidatedFiles(t *testing.T) {
	fx := acctest.GuestFixtures(t)
	root := t.TempDir()
	src, outside, out := filepath.Join(root, "src"), filepath.Join(root, "outside"), filepath.Join(root, "out")
	for _, d := range []string{src, outside, out} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The guest, by a hard link: the fixture is never written, and a copy
	// would cost a gigabyte.
	if err := os.Link(fx.Path(fx.Variants["plain"].Disk), filepath.Join(src, "web.vmdk")); err != nil {
		t.Fatal(err)
	}
	// Outside, a valid VMDK of the guest's size whose data is the secret:
	// what qemu would read if it followed the name written in the qcow2.
	secret := bytes.Repeat([]byte("VMCONV-HOST-SECRET-"), 1<<16)
	flat := filepath.Join(outside, "secret-flat.vmdk")
	if err := os.WriteFile(flat, secret, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(flat, 4<<30); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(outside, "web.vmdk"), testimg.Descriptor(0xfffffffe, 0xffffffff, "monolithicFlat", "", `RW 8388608 FLAT "secret-flat.vmdk" 0`), 0o600); err != nil {
		t.Fatal(err)
	}
	head := filepath.Join(src, "web-000001.qcow2")
	if err := testimg.Run("qemu-img", "create", "-q", "-f", "qcow2", "-u", "-b", filepath.Join(outside, "web.vmdk"), "-F", "vmdk", head, "4G"); err != nil {
		t.Fatal(err)
	}
	before := sumDir(t, src)

	// qemu-img is traced (every open, failed ones too); the emulators (the
	// appliance that inspects and fixes, the boot test's qemu) are watched
	// from the kernel, which does not slow them down.
	qemuImg := opentrace.Wrap(t, "qemu-img")
	watch := opentrace.WatchOpens(t, src, outside)
	e, err := engine.New(engine.Config{WorkDir: filepath.Join(root, "work"), CacheDir: filepath.Join(root, "cache"), QemuImg: qemuImg.Path})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	outPath := filepath.Join(out, "web.qcow2")
	p, err := e.Plan(ctx, engine.Request{
		Source: engine.SourceSpec{Path: head},
		Output: engine.OutputSpec{Path: outPath, Format: "qcow2"},
		// The appliance opens the chain to inspect the guest and dry-run
		// the fixes; making them, and the boot test (which boots an overlay
		// of the output, never the source), would open nothing more of it.
		Fixes: engine.FixSpec{Enabled: true, Options: engine.FixOptions{DryRun: true}},
	}, engine.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if w := strings.Join(p.Warnings, "\n"); !strings.Contains(w, "using web.vmdk from the same folder") {
		t.Errorf("the plan does not say it reads the parent beside the disk: %q", w)
	}
	res, err := e.Apply(ctx, p, nil, engine.ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Guest == nil || res.Guest.OS != "linux" || res.Fixes == nil {
		t.Fatalf("the appliance did not inspect the guest through the pinned chain: %+v", res.Guest)
	}

	watched := watch.Stop()
	if qemuImg.Runs() == 0 {
		t.Fatal("the tracer saw no qemu-img run: the engine bypassed it")
	}
	for _, o := range opentrace.Under(qemuImg.Opens(t), outside) {
		t.Errorf("qemu-img tried to open %s (ok=%v), outside the source folder", o.Path, o.OK)
	}
	for _, o := range opentrace.Under(qemuImg.Opens(t), src) {
		if base := filepath.Base(o.Path); base != "web.vmdk" && base != "web-000001.qcow2" {
			t.Errorf("qemu-img opened %s, which is not a file of the validated chain", o.Path)
		}
	}
	// Nothing opened the outside files during the apply, whoever it was.
	for _, o := range watched {
		if filepath.Dir(o.Path) == outside {
			t.Errorf("%s (pid %d) opened %s, outside the source folder", o.Exe, o.Pid, o.Path)
		}
	}
	emulator := opentrace.By(watched, "qemu-system-x86_64")
	if len(emulator) == 0 {
		t.Fatal("the watch saw no qemu-system-x86_64 open the source: it watched nothing")
	}
	for _, o := range emulator {
		if base := filepath.Base(o.Path); filepath.Dir(o.Path) == src && base != "web.vmdk" && base != "web-000001.qcow2" {
			t.Errorf("qemu-system-x86_64 opened %s, which is not a file of the validated chain", o.Path)
		}
	}
	data, err := os.ReadFile(outPath)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(data, []byte("VMCONV-HOST-SECRET-")) {
		t.Error("the secret reached the output")
	}
	if after := sumDir(t, src); !equalMaps(before, after) {
		t.Error("the source folder changed")
	}
}
