package vsphere

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vmware/govmomi/object"

	"github.com/vmconv/terraform-provider-vmconv/internal/testimg"
	"github.com/vmconv/terraform-provider-vmconv/internal/vcsimtest"
)

const warmSize = 320 * mib

// warmVM gives the simulator's VM one flat disk of warmSize with data,
// tracked by the test kit's changed block tracking.
func warmVM(t *testing.T) (*simVM, *vcsimtest.CBT, int32) {
	v := newSimVM(t)
	cbt := v.s.EnableCBT()
	key := cbt.FlatDisk(t, v.vm, warmSize, testimg.Layer{
		{Offset: 0, Length: 3 * mib, Byte: 0x11}, {Offset: 100 * mib, Length: 1 * mib, Byte: 0x12}, {Offset: warmSize - 64<<10, Length: 64 << 10, Byte: 0x13},
	})
	return v, cbt, key
}

// scatter writes b at every stride from start, n times, as a running
// guest scattering small writes would.
func scatter(t *testing.T, file string, start, stride int64, n int, b byte) {
	t.Helper()
	f, err := os.OpenFile(file, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := bytes.Repeat([]byte{b}, 4096)
	for i := range n {
		if _, err := f.WriteAt(buf, start+int64(i)*stride); err != nil {
			t.Fatal(err)
		}
	}
}

// sameContent fails unless the staging image holds what file holds.
func sameContent(t *testing.T, image, file, when string) {
	t.Helper()
	a, err := os.ReadFile(image)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != len(b) {
		t.Fatalf("%s: the staging image has %d bytes, the disk %d", when, len(a), len(b))
	}
	for off := 0; off < len(a); off += 4096 {
		if !bytes.Equal(a[off:off+4096], b[off:off+4096]) {
			t.Fatalf("%s: the staging image differs from the disk at offset %d", when, off)
		}
	}
}

// TestWarmSync syncs a disk the way a warm migration does, against the
// test kit's changed block tracking: a full copy, then only changed areas
// (more than one reply's worth), never what the running VM writes while
// the snapshot exists, a full copy again after tracking is reset, and a
// snapshot a failed run left removed first.
func TestWarmSync(t *testing.T) {
	v, cbt, key := warmVM(t)
	c := v.connect(t)
	ctx := context.Background()
	o := WarmOptions{Datacenter: "DC0", VM: "DC0_H0_VM0", Dir: t.TempDir()}
	disk := func() string { return cbt.LivePath(v.vm, key) }

	st, s, err := c.WarmSync(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if !s.Full || !s.EnabledCBT || s.FullReason != "the first copy" || len(st.Disks) != 1 || cbt.Removed != 1 {
		t.Fatalf("first sync: %+v (snapshots removed: %d)", s, cbt.Removed)
	}
	image := st.Disks[0].Image
	sameContent(t, image, disk(), "after the full copy")
	if want := int64(3*mib + 1*mib + 64<<10); s.ChangedBytes != want || s.CopiedBytes != want {
		t.Errorf("the full copy read %d of %d changed bytes; the disk holds %d allocated", s.CopiedBytes, s.ChangedBytes, want)
	}

	// 2100 scattered writes: more areas than one reply holds. The last
	// block, which held data, is zeroed: the image must read zeros there.
	scatter(t, disk(), 4*mib, 128<<10, 2100, 0x5a)
	scatter(t, disk(), warmSize-64<<10, 4096, 16, 0)
	// While the next snapshot exists, the VM writes on, over an area that
	// changed before it: the sync must copy that area as the snapshot
	// froze it, not as the running disk has it now.
	const during = 4 * mib
	SetAfterSnapshotHook(func(context.Context) { scatter(t, disk(), during, 64<<10, 1, 0x77) })
	q := cbt.Queries
	_, s, err = c.WarmSync(ctx, o)
	SetAfterSnapshotHook(nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.Full || s.Disks[0].From == "" || s.Disks[0].Areas != 2101 || s.Disks[0].Queries < 2 || cbt.Queries-q != s.Disks[0].Queries {
		t.Fatalf("second sync: %+v; want 2101 areas over more than one query", s.Disks[0])
	}
	if s.ChangedBytes != 2101*64<<10 {
		t.Errorf("changed bytes %d, want %d", s.ChangedBytes, 2101*64<<10)
	}
	live, _ := os.ReadFile(disk())
	img, _ := os.ReadFile(image)
	if img[during] != 0x5a || live[during] != 0x77 {
		t.Fatalf("the write made while the snapshot existed reached the image (%#x) or not the disk (%#x)", img[during], live[during])
	}
	copy(live[during:during+4096], bytes.Repeat([]byte{0x5a}, 4096))
	if !bytes.Equal(img, live) {
		t.Fatal("after the second sync the image differs from the disk as of the snapshot")
	}
	// The next sync takes that write in.
	if _, s, err = c.WarmSync(ctx, o); err != nil || s.Disks[0].Areas != 1 {
		t.Fatalf("third sync: %+v, %v", s, err)
	}
	sameContent(t, image, disk(), "after the third sync")

	// Tracking reset on the source: the change ID is refused, and the
	// sync copies everything again, saying why.
	cbt.Reset(v.vm)
	scatter(t, disk(), 50*mib, 64<<10, 3, 0x66)
	// Data the image holds is zeroed on the source: a full copy, which
	// reads only allocated areas, must not keep it.
	scatter(t, disk(), 1*mib, 4096, 16, 0)
	if _, s, err = c.WarmSync(ctx, o); err != nil {
		t.Fatal(err)
	}
	if !s.Full || !strings.Contains(s.FullReason, "was reset on the source") {
		t.Fatalf("the sync after a reset: full %v, %q", s.Full, s.FullReason)
	}
	sameContent(t, image, disk(), "after the reset")

	// A snapshot a killed run left behind is removed before the sync.
	vm := object.NewVirtualMachine(c.vc, v.vm.Self)
	task, err := vm.CreateSnapshot(ctx, "vmconv-warm-12345", "left by a killed run", false, false)
	if err == nil {
		err = task.Wait(ctx)
	}
	if err != nil {
		t.Fatal(err)
	}
	scatter(t, disk(), 60*mib, 64<<10, 2, 0x44)
	if _, s, err = c.WarmSync(ctx, o); err != nil {
		t.Fatal(err)
	}
	if len(s.RemovedSnapshots) != 1 || s.RemovedSnapshots[0] != "vmconv-warm-12345" || v.vm.Snapshot != nil {
		t.Fatalf("removed %v; the VM's snapshots now: %+v", s.RemovedSnapshots, v.vm.Snapshot)
	}
	sameContent(t, image, disk(), "after removing the leftover snapshot")
	// A disk added to the VM is copied in full, the other as before; each
	// image stays with its disk.
	if _, err := testimg.VMFSFlat(v.ds("DC0_H0_VM0"), "data", 0x3333, 8*mib, testimg.Layer{{Offset: 0, Length: 1 * mib, Byte: 0xd1}}); err != nil {
		t.Fatal(err)
	}
	v.addDisk("Hard disk 2", vcsimtest.SCSIKey(t, v.vm), 1, "[LocalDS_0] DC0_H0_VM0/data.vmdk", 8*mib)
	dataKey := v.disk(t, "[LocalDS_0] DC0_H0_VM0/data.vmdk").Key
	if err := cbt.Track(v.vm, dataKey); err != nil {
		t.Fatal(err)
	}
	scatter(t, disk(), 70*mib, 64<<10, 1, 0x45)
	if st, s, err = c.WarmSync(ctx, o); err != nil {
		t.Fatal(err)
	}
	if len(s.Disks) != 2 || s.Disks[0].From == "" || s.Disks[0].Areas != 1 || s.Disks[1].From != "" || len(st.Disks) != 2 {
		t.Fatalf("the sync after a disk was added: %+v", s.Disks)
	}
	sameContent(t, st.Disks[0].Image, disk(), "disk 0 after a disk was added")
	sameContent(t, st.Disks[1].Image, cbt.LivePath(v.vm, dataKey), "the added disk")
	got, _ := ReadWarmState(o.Dir)
	if got == nil || len(got.Syncs) != 6 || got.Writing {
		t.Fatalf("the record: %+v", got)
	}
}

// TestWarmSyncKilled kills a sync (SIGKILL, in a process of its own) while
// it writes into the image, and resumes: the next sync repairs every area
// the killed one wrote, from the change ID recorded before it.
func TestWarmSyncKilled(t *testing.T) {
	if os.Getenv("VMCONV_WARM_CHILD") != "" {
		t.Skip("run by the parent test only")
	}
	v, cbt, key := warmVM(t)
	c := v.connect(t)
	ctx := context.Background()
	o := WarmOptions{Datacenter: "DC0", VM: "DC0_H0_VM0", Dir: t.TempDir()}
	disk := func() string { return cbt.LivePath(v.vm, key) }
	if _, _, err := c.WarmSync(ctx, o); err != nil {
		t.Fatal(err)
	}
	scatter(t, disk(), 4*mib, 128<<10, 2100, 0x5a)

	child := exec.Command(os.Args[0], "-test.run=^TestWarmSyncChild$", "-test.count=1")
	child.Env = append(os.Environ(), "VMCONV_WARM_CHILD="+o.Dir, "VMCONV_WARM_URL="+v.s.URL, "VMCONV_WARM_THUMB="+v.s.Thumbprint)
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline) && !killed; time.Sleep(5 * time.Millisecond) {
		b, _ := os.ReadFile(filepath.Join(o.Dir, warmRecord))
		var st WarmState
		if json.Unmarshal(b, &st) == nil && st.Writing {
			time.Sleep(100 * time.Millisecond) // into the writes
			child.Process.Signal(syscall.SIGKILL)
			killed = true
		}
	}
	child.Wait()
	if !killed {
		t.Fatal("the child sync never started writing")
	}
	if cbt.Created != 2 || cbt.Removed != 1 {
		t.Fatalf("snapshots created %d, removed %d: the killed sync should have left one", cbt.Created, cbt.Removed)
	}
	scatter(t, disk(), 300*mib, 64<<10, 1, 0x99)
	st, s, err := c.WarmSync(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if !s.Resumed || s.Full || len(s.RemovedSnapshots) != 1 || s.Disks[0].Areas != 2101 {
		t.Fatalf("the resumed sync: %+v", s)
	}
	sameContent(t, st.Disks[0].Image, disk(), "after the resumed sync")
}

// TestWarmSyncChild is the sync the parent kills.
func TestWarmSyncChild(t *testing.T) {
	dir := os.Getenv("VMCONV_WARM_CHILD")
	if dir == "" {
		t.Skip("run by TestWarmSyncKilled")
	}
	c, err := Connect(context.Background(), Options{URL: os.Getenv("VMCONV_WARM_URL"), Username: vcsimtest.User, Password: vcsimtest.Password, Thumbprint: os.Getenv("VMCONV_WARM_THUMB")})
	if err != nil {
		t.Fatal(err)
	}
	c.WarmSync(context.Background(), WarmOptions{Datacenter: "DC0", VM: "DC0_H0_VM0", Dir: dir})
	t.Fatal("the sync ended before it was killed")
}

// TestLockDir: a second sync of the same staging folder fails at once
// while the first holds it, and proceeds once it is released.
func TestLockDir(t *testing.T) {
	dir := t.TempDir()
	unlock, err := lockDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lockDir(dir); err == nil {
		t.Fatal("a second lock of a held staging folder succeeded")
	}
	unlock()
	again, err := lockDir(dir)
	if err != nil {
		t.Fatalf("the lock was not released: %v", err)
	}
	again()
}
