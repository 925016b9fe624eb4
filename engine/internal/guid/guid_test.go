package guid

import (
	"bytes"
	"testing"
)

// The EFI global variable GUID as edk2 lays it out in a variable store.
func TestParse(t *testing.T) {
	got := Must("8be4df61-93ca-11d2-aa0d-00e098032b8c")
	want := []byte{0x61, 0xdf, 0xe4, 0x8b, 0xca, 0x93, 0xd2, 0x11, 0xaa, 0x0d, 0x00, 0xe0, 0x98, 0x03, 0x2b, 0x8c}
	if !bytes.Equal(got, want) {
		t.Fatalf("got % x, want % x", got, want)
	}
	if up := Must("8BE4DF61-93CA-11D2-AA0D-00E098032B8C"); !bytes.Equal(up, want) {
		t.Errorf("upper case: % x", up)
	}
	for _, bad := range []string{"", "8be4df61", "8be4df61-93ca-11d2-aa0d-00e098032b8", "8be4df6193ca11d2aa0d00e098032b8c", "zze4df61-93ca-11d2-aa0d-00e098032b8c"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
}
