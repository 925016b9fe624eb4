package esxissh

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/engine/vmx"
	"github.com/vmconv/terraform-provider-vmconv/internal/sshdtest"
	"github.com/vmconv/terraform-provider-vmconv/internal/testimg"
)

// vmxText is a .vmx as ESXi writes it, with a CD-ROM and a disk on each
// of scsi0:0 and scsi0:1 (the second left out when empty).
func vmxText(disk0, disk1 string) string {
	s := `.encoding = "UTF-8"
config.version = "8"
numvcpus = "2"
memSize = "2048"
scsi0.virtualDev = "pvscsi"
scsi0.present = "TRUE"
scsi0:0.deviceType = "scsi-hardDisk"
scsi0:0.fileName = "` + disk0 + `"
scsi0:0.present = "TRUE"
sata0.present = "TRUE"
sata0:0.deviceType = "cdrom-image"
sata0:0.fileName = "/vmfs/volumes/ds1/iso/debian-12.iso"
sata0:0.present = "TRUE"
displayName = "web"
guestOS = "debian11-64"
`
	if disk1 != "" {
		s += `scsi0:1.deviceType = "scsi-hardDisk"
scsi0:1.fileName = "` + disk1 + `"
scsi0:1.present = "TRUE"
`
	}
	return s
}

// vmDatastore lays out a datastore: vm/ holds web.vmx, whose first disk is
// a snapshot chain (web-000001.vmdk over web.vmdk) and whose second is
// data/web.vmdk, a flat disk with the same file names as the chain's base;
// other/ is another VM's folder with x.vmdk. Paths are resolved, as the
// host reports them.
func vmDatastore(t *testing.T) (root, vm string) {
	root, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(root, 0o755)
	vm = filepath.Join(root, "vm")
	for _, d := range []string{vm, filepath.Join(vm, "data"), filepath.Join(root, "other")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := testimg.VMFSFlat(vm, "web", 0x1111, 8*mib, testimg.BaseLayer); err != nil {
		t.Fatal(err)
	}
	if _, err := testimg.VMFSSparse(vm, "web-000001", "web.vmdk", 0x2222, 0x1111, 8*mib, 1, testimg.Snap1); err != nil {
		t.Fatal(err)
	}
	if _, err := testimg.VMFSFlat(filepath.Join(vm, "data"), "web", 0x3333, 4*mib, testimg.Snap1); err != nil {
		t.Fatal(err)
	}
	if _, err := testimg.VMFSFlat(filepath.Join(root, "other"), "x", 0x4444, 4*mib, testimg.BaseLayer); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(vm, "web.vmx"), []byte(vmxText("web-000001.vmdk", "data/web.vmdk")), 0o644); err != nil {
		t.Fatal(err)
	}
	return root, vm
}

// tree records every file under root with its mode, size, time and
// content, to show that nothing in it changed.
func tree(t *testing.T, root string) map[string]string {
	m := map[string]string{}
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := os.Lstat(p)
		sum := ""
		if fi.Mode().IsRegular() {
			b, _ := os.ReadFile(p)
			sum = fmt.Sprintf("%x", sha256.Sum256(b))
		}
		m[p] = fmt.Sprintf("%v %d %v %s", fi.Mode(), fi.Size(), fi.ModTime().UnixNano(), sum)
		return nil
	})
	return m
}

func dialTest(t *testing.T) *Client {
	s := sshdtest.Start(t)
	c, err := Dial(context.Background(), Options{Host: s.Addr, User: s.User, PrivateKey: s.PrivateKey, HostKey: s.HostKey})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestFetchVMOverRealSSHD(t *testing.T) {
	c := dialTest(t)
	ctx := context.Background()
	root, vm := vmDatastore(t)
	before := tree(t, root)
	remote := filepath.Join(vm, "web.vmx")

	v, heads, err := c.ReadVMX(ctx, remote)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{filepath.Join(vm, "web-000001.vmdk"), filepath.Join(vm, "data", "web.vmdk")}; !reflect.DeepEqual(heads, want) {
		t.Errorf("heads %v, want %v", heads, want)
	}
	if len(v.Disks) != 2 || v.Disks[0].Device != "scsi0:0" || v.Disks[1].Device != "scsi0:1" || v.Disks[1].Adapter != "pvscsi" {
		t.Errorf("disks %+v", v.Disks)
	}
	if !reflect.DeepEqual(v.Skipped, []string{"sata0:0 (CD-ROM)"}) || v.CPUs != 2 || v.MemoryMiB != 2048 {
		t.Errorf("vm %+v", v)
	}

	_, files, err := c.StatVM(ctx, remote)
	if err != nil {
		t.Fatal(err)
	}
	var names [][]string
	var flat []FileInfo
	for _, chain := range files {
		var n []string
		for _, f := range chain {
			n = append(n, strings.TrimPrefix(f.Path, vm+"/"))
			flat = append(flat, f)
		}
		names = append(names, n)
	}
	wantNames := [][]string{
		{"web-000001.vmdk", "web-000001-delta.vmdk", "web.vmdk", "web-flat.vmdk"},
		{"data/web.vmdk", "data/web-flat.vmdk"},
		{"web.vmx"},
	}
	if !reflect.DeepEqual(names, wantNames) {
		t.Errorf("StatVM files %v, want %v", names, wantNames)
	}
	if fi, _ := os.Stat(remote); files[2][0].Size != fi.Size() || !files[2][0].ModTime.Equal(fi.ModTime().Truncate(1e9)) {
		t.Errorf("the .vmx's FileInfo %+v", files[2][0])
	}

	dst := t.TempDir()
	r, err := c.FetchVM(ctx, remote, dst)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Disks) != 2 || r.Disks[0].Head != filepath.Join(dst, "disk0", "web-000001.vmdk") || r.Disks[1].Head != filepath.Join(dst, "disk1", "web.vmdk") {
		t.Fatalf("fetched %+v", r.Disks)
	}
	if !reflect.DeepEqual(r.VM, v) {
		t.Errorf("FetchVM's VM %+v differs from ReadVMX's %+v", r.VM, v)
	}
	// What the plan saw is what the copy reports, so their fingerprints agree.
	if !reflect.DeepEqual(r.Remote, flat) {
		t.Errorf("FetchVM's Remote %+v, StatVM's %+v", r.Remote, flat)
	}
	// Both disks have a web.vmdk and a web-flat.vmdk: each copy is its own.
	for i, chain := range files[:2] {
		for _, f := range chain {
			got, _ := os.ReadFile(filepath.Join(dst, fmt.Sprintf("disk%d", i), filepath.Base(f.Path)))
			want, _ := os.ReadFile(f.Path)
			if len(want) == 0 || !bytes.Equal(got, want) {
				t.Errorf("disk%d: %s differs from its source (%d vs %d bytes)", i, filepath.Base(f.Path), len(got), len(want))
			}
		}
	}
	if es, _ := os.ReadDir(dst); len(es) != 2 {
		t.Errorf("dst holds %v", es)
	}
	again, err := c.FetchVM(ctx, remote, dst)
	if err != nil || again.Disks[0].Reused != 4 || again.Disks[1].Reused != 2 {
		t.Errorf("second FetchVM %+v %v", again, err)
	}
	if after := tree(t, root); !reflect.DeepEqual(before, after) {
		t.Error("the source datastore changed")
	}
}

func TestVMOnHostIsConfined(t *testing.T) {
	c := dialTest(t)
	ctx := context.Background()
	root, vm := vmDatastore(t)
	other := filepath.Join(root, "other", "x.vmdk")
	if err := os.Symlink(other, filepath.Join(vm, "link.vmdk")); err != nil {
		t.Fatal(err)
	}
	// A snapshot in the folder whose parent, named plainly, is a symlink
	// to another VM's disk.
	if err := os.Symlink(other, filepath.Join(vm, "base.vmdk")); err != nil {
		t.Fatal(err)
	}
	if _, err := testimg.VMFSSparse(vm, "snap-000001", "base.vmdk", 0x5555, 0x4444, 4*mib, 1, testimg.Snap1); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(vm, "fifo.vmx"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(vm, "fifo.vmdk"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A descriptor whose flat extent is a FIFO: the copy would open it.
	if err := syscall.Mkfifo(filepath.Join(vm, "pipe-flat.vmdk"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(vm, "pipe.vmdk"), testimg.Descriptor(0x6666, 0xffffffff, "vmfs", "", `RW 8192 VMFS "pipe-flat.vmdk"`), 0o644); err != nil {
		t.Fatal(err)
	}
	big := []byte(vmxText("web-000001.vmdk", ""))
	// Well past the bound, so the error gives the size the host stat'ed, not
	// what a read up to the bound would have found.
	big = append(big, bytes.Repeat([]byte("# padding\n"), vmx.MaxSize/10+100)...)
	nonUTF8 := vmxText("web-000001.vmdk", "") + "annotation = \"caf\xe9\"\n"
	files := map[string]string{
		"dotdot.vmx":    vmxText("web-000001.vmdk", "../other/x.vmdk"),
		"absolute.vmx":  vmxText(other, ""),
		"symlink.vmx":   vmxText("web-000001.vmdk", "link.vmdk"),
		"missing.vmx":   vmxText("web-000001.vmdk", "gone.vmdk"),
		"big.vmx":       string(big),
		"nonutf8.vmx":   nonUTF8,
		"parent.vmx":    vmxText("snap-000001.vmdk", ""),
		"fifodisk.vmx":  vmxText("fifo.vmdk", ""),
		"fifoext.vmx":   vmxText("pipe.vmdk", ""),
		"nodisk.vmx":    strings.ReplaceAll(vmxText("x.vmdk", ""), `scsi0:0.present = "TRUE"`, `scsi0:0.present = "FALSE"`),
		"absinside.vmx": vmxText(filepath.Join(vm, "web-000001.vmdk"), "data/./web.vmdk"),
	}
	for n, s := range files {
		if err := os.WriteFile(filepath.Join(vm, n), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	fifos := watchFIFOs(filepath.Join(vm, "fifo.vmx"), filepath.Join(vm, "fifo.vmdk"), filepath.Join(vm, "pipe-flat.vmdk"))
	before := tree(t, root)
	nonUTF8Line := fmt.Sprint(strings.Count(nonUTF8, "\n"))
	for _, tc := range []struct {
		vmx string
		// code is the refusal; empty for a VM that is accepted.
		code fault.Code
		// file is the remote path the error names (the .vmx unless set).
		file string
		// read is whether ReadVMX accepts it: the faults in a disk's chain
		// show only when the chain is walked.
		read bool
		says []string
	}{
		{vmx: "dotdot.vmx", code: fault.PathOutsideSource, says: []string{"scsi0:1", "line 17", other}},
		{vmx: "absolute.vmx", code: fault.PathOutsideSource, says: []string{"scsi0:0", "line 8", other}},
		{vmx: "symlink.vmx", code: fault.PathOutsideSource, says: []string{"scsi0:1", "line 17", `"link.vmdk"`, other}},
		{vmx: "missing.vmx", code: fault.SourceMissing, says: []string{"scsi0:1", "line 17", "gone.vmdk"}},
		{vmx: "big.vmx", code: fault.CorruptDescriptor, says: []string{fmt.Sprintf("is %d bytes", len(big)), "a few KiB"}},
		{vmx: "fifo.vmx", code: fault.SourceUnreadable, says: []string{"not a regular file"}},
		{vmx: "nonutf8.vmx", code: fault.CorruptDescriptor, says: []string{"line " + nonUTF8Line, "UTF-8"}},
		{vmx: "nodisk.vmx", code: fault.InvalidRequest, says: []string{"no hard disk"}},
		{vmx: "absent.vmx", code: fault.SourceMissing, says: []string{"does not exist"}},
		{vmx: "parent.vmx", code: fault.PathOutsideSource, file: filepath.Join(vm, "base.vmdk"), read: true, says: []string{other}},
		{vmx: "fifodisk.vmx", code: fault.SourceUnreadable, file: filepath.Join(vm, "fifo.vmdk"), read: true, says: []string{"not a regular file"}},
		{vmx: "fifoext.vmx", code: fault.SourceUnreadable, file: filepath.Join(vm, "pipe-flat.vmdk"), read: true, says: []string{"not a regular file"}},
		{vmx: "absinside.vmx", read: true},
	} {
		t.Run(tc.vmx, func(t *testing.T) {
			remote := filepath.Join(vm, tc.vmx)
			want := tc.file
			if want == "" {
				want = remote
			}
			judge := func(op string, err error) {
				t.Helper()
				if tc.code == "" {
					if err != nil {
						t.Errorf("%s: %v", op, err)
					}
					return
				}
				fe, ok := fault.As(err)
				if !ok || fe.Code != tc.code || fe.File != want || !strings.Contains(err.Error(), want) {
					t.Errorf("%s: %v (code %q), want %s about %s", op, err, fault.CodeOf(err), tc.code, want)
					return
				}
				for _, s := range tc.says {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("%s: %q does not say %q", op, err, s)
					}
				}
				if len(fe.Facts) == 0 || fe.Facts[len(fe.Facts)-1] != (fault.Fact{Label: "Host", Value: c.host}) {
					t.Errorf("%s: facts %v do not name the host", op, fe.Facts)
				}
			}
			_, heads, err := c.ReadVMX(ctx, remote)
			if tc.read {
				if err != nil || len(heads) == 0 {
					t.Errorf("ReadVMX: %v %v", heads, err)
				}
			} else {
				judge("ReadVMX", err)
			}
			_, _, err = c.StatVM(ctx, remote)
			judge("StatVM", err)
			dst := t.TempDir()
			r, err := c.FetchVM(ctx, remote, dst)
			judge("FetchVM", err)
			if tc.code != "" {
				testimg.AssertEmpty(t, dst)
			} else if err == nil && (len(r.Disks) != 2 || r.Disks[0].Head != filepath.Join(dst, "disk0", "web-000001.vmdk")) {
				t.Errorf("fetched %+v", r.Disks)
			}
		})
	}
	if n := fifos(); n != 0 {
		t.Errorf("the host opened a FIFO %d time(s)", n)
	}
	if after := tree(t, root); !reflect.DeepEqual(before, after) {
		t.Error("the source datastore changed")
	}
}

// watchFIFOs lets go of any reader blocked opening one of the FIFOs (the
// host's SFTP server, were a guard missing), so that the test fails
// instead of hanging; stop says how many times one was opened.
func watchFIFOs(paths ...string) (stop func() int) {
	done := make(chan struct{})
	var n atomic.Int32
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			for _, p := range paths {
				// Without a reader, a non-blocking open for writing fails.
				if fd, err := syscall.Open(p, syscall.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
					syscall.Close(fd)
					n.Add(1)
				}
			}
		}
	}()
	return func() int { close(done); wg.Wait(); return int(n.Load()) }
}

func TestWithin(t *testing.T) {
	for _, tc := range []struct {
		dir, p string
		want   bool
	}{
		{"/vmfs/volumes/ds/web", "/vmfs/volumes/ds/web/web.vmdk", true},
		{"/vmfs/volumes/ds/web", "/vmfs/volumes/ds/web/data/web.vmdk", true},
		{"/vmfs/volumes/ds/web", "/vmfs/volumes/ds/web2/web.vmdk", false},
		{"/vmfs/volumes/ds/web", "/vmfs/volumes/ds/other/web.vmdk", false},
		{"/vmfs/volumes/ds/web/", "/vmfs/volumes/ds/web/web.vmdk", true},
		{"/", "/etc/passwd", true},
	} {
		t.Run(tc.p, func(t *testing.T) {
			if got := within(tc.dir, tc.p); got != tc.want {
				t.Errorf("within(%q, %q) = %v", tc.dir, tc.p, got)
			}
		})
	}
}
