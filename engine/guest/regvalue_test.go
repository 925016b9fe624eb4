package guest

import "testing"

func TestRegValueRoundTrip(t *testing.T) {
	if got := (RegValue{Type: RegSZ, Data: SZ(`system32\drivers\viostor.sys`)}).String(); got != `system32\drivers\viostor.sys` {
		t.Errorf("SZ round trip: %q", got)
	}
	if v, ok := (RegValue{Type: RegDWORD, Data: DWORD(0xdeadbeef)}).DWORD(); !ok || v != 0xdeadbeef {
		t.Errorf("DWORD round trip: %x %v", v, ok)
	}
	if _, ok := (RegValue{Data: []byte{1, 2}}).DWORD(); ok {
		t.Error("a 2-byte value read as a DWORD")
	}
}
