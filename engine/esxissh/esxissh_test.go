package esxissh

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/internal/sshdtest"
	"github.com/vmconv/terraform-provider-vmconv/internal/testimg"
)

const mib = 1 << 20

// esxiChain lays out what an ESXi datastore folder holds for a VM with one
// snapshot: a vmfs descriptor with its flat extent, and a vmfsSparse delta.
func esxiChain(t *testing.T) (dir, head string) {
	dir = t.TempDir()
	os.Chmod(dir, 0o755)
	if _, err := testimg.VMFSFlat(dir, "web", 0x1111, 8*mib, testimg.BaseLayer); err != nil {
		t.Fatal(err)
	}
	head, err := testimg.VMFSSparse(dir, "web-000001", "web.vmdk", 0x2222, 0x1111, 8*mib, 1, testimg.Snap1)
	if err != nil {
		t.Fatal(err)
	}
	return dir, head
}

func TestFetchOverRealSSHD(t *testing.T) {
	s := sshdtest.Start(t)
	src, head := esxiChain(t)
	ctx := context.Background()
	c, err := Dial(ctx, Options{Host: s.Addr, User: s.User, PrivateKey: s.PrivateKey, HostKey: s.HostKey})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	dst := t.TempDir()
	// A partial copy of the flat extent, as an interrupted apply leaves it.
	flat, _ := os.ReadFile(filepath.Join(src, "web-flat.vmdk"))
	fi, _ := os.Stat(filepath.Join(src, "web-flat.vmdk"))
	os.WriteFile(filepath.Join(dst, "web-flat.vmdk.part"), flat[:len(flat)/2], 0o644)
	os.WriteFile(filepath.Join(dst, "web-flat.vmdk.part.json"), []byte(`{"size":`+strconv.FormatInt(fi.Size(), 10)+`,"mod_time":"`+fi.ModTime().UTC().Truncate(time.Second).Format(time.RFC3339Nano)+`"}`), 0o644)

	r, err := c.Fetch(ctx, head, dst)
	if err != nil {
		t.Fatal(err)
	}
	if r.Head != filepath.Join(dst, "web-000001.vmdk") || len(r.Files) != 4 || r.Resumed != 1 {
		t.Errorf("fetched %+v", r)
	}
	for _, n := range []string{"web-000001.vmdk", "web-000001-delta.vmdk", "web.vmdk", "web-flat.vmdk"} {
		a, _ := os.ReadFile(filepath.Join(src, n))
		b, _ := os.ReadFile(filepath.Join(dst, n))
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs after the copy", n)
		}
	}
	// Again: everything is reused.
	if r, err = c.Fetch(ctx, head, dst); err != nil || r.Reused != 4 {
		t.Errorf("second fetch %+v %v", r, err)
	}
	st, err := c.Stat(head)
	if err != nil || len(st) != 4 {
		t.Errorf("stat %+v %v", st, err)
	}
}

func TestHostKeyIsPinned(t *testing.T) {
	s := sshdtest.Start(t)
	ctx := context.Background()
	_, err := Dial(ctx, Options{Host: s.Addr, User: s.User, PrivateKey: s.PrivateKey})
	if fault.CodeOf(err) != fault.HostKeyMismatch || !strings.Contains(err.Error(), "not pinned") || !strings.Contains(err.Error(), "SHA256:") {
		t.Errorf("unknown key: %v", err)
	}
	_, err = Dial(ctx, Options{Host: s.Addr, User: s.User, PrivateKey: s.PrivateKey, HostKey: s.OtherHostKey})
	if fault.CodeOf(err) != fault.HostKeyMismatch || !strings.Contains(err.Error(), "not the pinned one") {
		t.Errorf("wrong key: %v", err)
	}
	// The fingerprint form pins too.
	k := strings.Fields(s.HostKey)
	pin, _ := parsePin(strings.Join(k, " "))
	c, err := Dial(ctx, Options{Host: s.Addr, User: s.User, PrivateKey: s.PrivateKey, HostKey: pin})
	if err != nil {
		t.Fatalf("fingerprint pin: %v", err)
	}
	c.Close()
}

func TestRemotePath(t *testing.T) {
	for in, want := range map[string]string{"[datastore1] web/web.vmdk": "/vmfs/volumes/datastore1/web/web.vmdk", "/vmfs/volumes/ds/a.vmdk": "/vmfs/volumes/ds/a.vmdk"} {
		if got, err := RemotePath(in); err != nil || got != want {
			t.Errorf("RemotePath(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := RemotePath("web.vmdk"); fault.CodeOf(err) != fault.InvalidRequest {
		t.Error("a relative path was accepted")
	}
}
