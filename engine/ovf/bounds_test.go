package ovf

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/internal/testimg"
)

const gib = int64(1) << 30

// TestExtractOVARefusesSparseMembers feeds ExtractOVA tar bombs written by
// GNU tar in every sparse dialect: a 20 KiB archive whose disk member
// claims 100 GiB, and one claiming 1 GiB, which would fit in the free space
// and so must be refused for being sparse, not for its size. As root (CI)
// the extraction goes to a small tmpfs, so that a regression fills that
// and not the machine's disk; otherwise only the 1 GiB bombs run.
func TestExtractOVARefusesSparseMembers(t *testing.T) {
	claims := []int64{100 * gib, gib}
	if os.Geteuid() != 0 {
		claims = claims[1:]
	}
	for _, format := range testimg.SparseTarFormats {
		for _, claim := range claims {
			t.Run(fmt.Sprintf("%s/%dGiB", format, claim/gib), func(t *testing.T) {
				ova := filepath.Join(t.TempDir(), "web.ova")
				ovf := testimg.OVF("web", "web-disk1.vmdk", claim>>20, 2, 2048, false)
				if err := testimg.SparseOVA(ova, "web", ovf, "web-disk1.vmdk", claim, format); err != nil {
					t.Fatal(err)
				}
				if fi, _ := os.Stat(ova); fi.Size() > 64<<10 {
					t.Fatalf("the bomb is %d bytes: not sparse", fi.Size())
				}
				dir := t.TempDir()
				if os.Geteuid() == 0 {
					dir = testimg.SmallFS(t, 64<<20)
				}
				_, err := ExtractOVA(context.Background(), ova, dir)
				fe, ok := fault.As(err)
				if !ok || fe.Code != fault.HostileArchive || !strings.Contains(fe.Msg, "sparse") {
					t.Fatalf("error %v, want hostile_archive about a sparse member", err)
				}
				if fe.File != ova+" member web-disk1.vmdk" {
					t.Errorf("the fault names %q, not the OVA's member", fe.File)
				}
				testimg.AssertEmpty(t, dir)
			})
		}
	}
}

// TestExtractOVABounds refuses dense members that are larger than what the
// OVF says, or than the cache can hold, before writing them.
func TestExtractOVABounds(t *testing.T) {
	big := bytes.Repeat([]byte("KDMV"), 66<<20/4) // past a 1-byte disk's slack
	ovfText := func(size, capacity string) []byte {
		o := strings.Replace(fmt.Sprintf(testOVF, "web01-disk1.vmdk"), `ovf:size="4096"`, `ovf:size="`+size+`"`, 1)
		return []byte(strings.Replace(o, `ovf:capacity="16" ovf:capacityAllocationUnits="byte * 2^30"`, `ovf:capacity="`+capacity+`" ovf:capacityAllocationUnits="byte"`, 1))
	}
	cases := map[string]struct {
		ovf  []byte
		disk []byte
		code fault.Code
		want string
	}{
		"larger than ovf:size":    {ovfText("4096", "17179869184"), append(disk, 'x'), fault.HostileArchive, "declares its file as 4096 bytes (ovf:size)"},
		"larger than capacity":    {ovfText("0", "1"), big, fault.HostileArchive, "more than a disk of 1 bytes"},
		"ovf declares a petabyte": {ovfText("1125899906842624", "1125899906842624"), disk, fault.NoSpace, "the sizes its OVF declares"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			ova := writeOVA(t, member{name: "web01.ovf", body: tc.ovf}, member{name: "web01-disk1.vmdk", body: tc.disk})
			_, err := ExtractOVA(context.Background(), ova, dir)
			fe, ok := fault.As(err)
			if !ok || fe.Code != tc.code || !strings.Contains(fe.Msg, tc.want) {
				t.Fatalf("error %v, want %s containing %q", err, tc.code, tc.want)
			}
			testimg.AssertEmpty(t, dir)
		})
	}
}

// TestExtractOVANoRoom extracts into a small real file system: a member
// that does not fit is refused before a byte is written, with the cache
// folder, the OVA and the member named.
func TestExtractOVANoRoom(t *testing.T) {
	dir := testimg.SmallFS(t, 8<<20)
	body := bytes.Repeat([]byte("KDMV"), 9<<20/4)
	ovfText := []byte(strings.Replace(fmt.Sprintf(testOVF, "web01-disk1.vmdk"), ` ovf:size="4096"`, "", 1))
	ova := writeOVA(t, member{name: "web01.ovf", body: ovfText}, member{name: "web01-disk1.vmdk", body: body})
	_, err := ExtractOVA(context.Background(), ova, dir)
	fe, ok := fault.As(err)
	if !ok || fe.Code != fault.NoSpace {
		t.Fatalf("error %v, want no_space", err)
	}
	if fe.File != ova+" member web01-disk1.vmdk" || !strings.Contains(fe.Msg, dir) || !strings.Contains(fe.Hint, "cache_dir") {
		t.Errorf("the fault does not name the member and the cache folder: %s (hint %q)", fe, fe.Hint)
	}
	testimg.AssertEmpty(t, dir)
}
