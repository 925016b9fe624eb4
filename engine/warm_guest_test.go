package engine_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmconv/terraform-provider-vmconv/engine"
	"github.com/vmconv/terraform-provider-vmconv/engine/boottest"
	"github.com/vmconv/terraform-provider-vmconv/internal/acctest"
	"github.com/vmconv/terraform-provider-vmconv/internal/guestfsenv"
	"github.com/vmconv/terraform-provider-vmconv/internal/testimg"
	"github.com/vmconv/terraform-provider-vmconv/internal/vcsimtest"
)

// TestWarmGuest is a warm migration of a real guest: the plain fixture
// guest (Debian as VMware leaves it) runs as the simulated vCenter's VM,
// with the test kit's changed block tracking. The guest's file system
// changes between the syncs the way a running guest changes it: a marker
// file, and blocks rewritten in place at scattered places of a file
// that was copied in full by the first sync. After the second sync the
// staging image must equal the VM's disk; a second marker is written just
// before the cutover, which must carry it too. The migrated guest boots
// (fixed, on virtio) and holds both markers and every rewritten block.
func TestWarmGuest(t *testing.T) {
	fx := acctest.GuestFixtures(t)
	raw := filepath.Join(t.TempDir(), "plain.raw")
	if err := testimg.Run("qemu-img", "convert", "-O", "raw", fx.Path(fx.Variants["plain"].Disk), raw); err != nil {
		t.Fatal(err)
	}
	const scatterSize = 32 << 20
	scatter := make([]byte, scatterSize)
	gf := func(format, disk string, args ...string) string {
		t.Helper()
		cmd := exec.Command("guestfish", append([]string{"--format=" + format, "-a", disk, "-i"}, args...)...)
		cmd.Env = guestfsenv.Env()
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("guestfish %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	// The file whose blocks change later, in the disk before the VM runs.
	gf("raw", raw, "--rw", "fallocate64", "/root/scatter", fmt.Sprint(scatterSize))

	s := vcsimtest.Start(t)
	vm := s.VM("DC0_H0_VM0")
	cbt := s.EnableCBT()
	key := cbt.FlatDiskFrom(t, vm, raw)
	live := func() string { return cbt.LivePath(vm, key) }
	e := newEngine(t)
	out := filepath.Join(t.TempDir(), "web")
	req := engine.Request{
		Source: engine.SourceSpec{VSphere: &engine.VSphereSpec{URL: s.URL, Datacenter: "DC0", VM: "DC0_H0_VM0",
			Thumbprint: s.Thumbprint, Username: vcsimtest.User, Password: vcsimtest.Password, Warm: &engine.WarmSpec{}}},
		Output:   engine.OutputSpec{Dir: out},
		Fixes:    engine.FixSpec{Enabled: true},
		BootTest: engine.BootTestSpec{Enabled: true, Options: boottest.Options{RequireNetwork: true}},
	}
	ctx := context.Background()
	if _, err := e.WarmSync(ctx, req, nil); err != nil {
		t.Fatal(err)
	}

	// The running guest writes: a marker, and 4 KiB pieces at scattered
	// offsets of the file (unwritten extents the first sync copied as
	// zeros, now rewritten where they lie).
	marker1 := "warm marker one " + randHex(t)
	cmds := []string{"--rw", "write", "/root/marker1", marker1}
	for i, off := range []int64{0, 4096 * 3, 1 << 20, 7<<20 + 4096, 19 << 20, scatterSize - 4096} {
		piece := strings.Repeat(fmt.Sprintf("%x", i+1), 4096)
		copy(scatter[off:], piece)
		cmds = append(cmds, ":", "pwrite", "/root/scatter", piece, fmt.Sprint(off))
	}
	gf("raw", live(), cmds...)
	st, err := e.WarmSync(ctx, req, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(st.Syncs); n != 2 || st.Syncs[1].Full {
		t.Fatalf("after the second sync: %d syncs, the last full: %v", n, n > 1 && st.Syncs[n-1].Full)
	}
	if err := testimg.Run("qemu-img", "compare", "-f", "raw", "-F", "raw", st.Disks[0].Image, live()); err != nil {
		t.Fatalf("the staging image after the second sync is not the VM's disk: %v", err)
	}

	// Just before the cutover.
	marker2 := "warm marker two " + randHex(t)
	gf("raw", live(), "--rw", "write", "/root/marker2", marker2)
	req.Source.VSphere.Warm.Cutover = true
	p, err := e.Plan(ctx, req, engine.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := e.Apply(ctx, p, nil, engine.ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !res.BootTest.Passed() {
		t.Fatalf("the migrated guest did not boot: %s (%s): %s", res.BootTest.Status, res.BootTest.Reason, res.BootTest.Detail)
	}
	if res.Warm == nil || res.Warm.DowntimeMS <= 0 || len(res.Warm.Syncs) != 3 {
		t.Fatalf("the warm result: %+v", res.Warm)
	}
	sum := sha256.Sum256(scatter)
	got := gf("qcow2", res.Disks[0].Path, "cat", "/root/marker1", ":", "cat", "/root/marker2", ":", "checksum", "sha256", "/root/scatter")
	for _, w := range []string{marker1, marker2, hex.EncodeToString(sum[:])} {
		if !strings.Contains(got, w) {
			t.Errorf("the migrated disk lacks %q; guestfish printed:\n%s", w, got)
		}
	}
}

func randHex(t *testing.T) string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
