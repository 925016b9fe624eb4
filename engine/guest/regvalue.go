package guest

import (
	"encoding/binary"
	"strings"
	"unicode/utf16"
)

// Registry value types.
const (
	RegSZ       = 1
	RegExpandSZ = 2
	RegDWORD    = 4
)

// SZ encodes a string value's data: UTF-16LE with a terminating NUL.
func SZ(s string) []byte {
	u := utf16.Encode([]rune(s + "\x00"))
	b := make([]byte, 2*len(u))
	for i, c := range u {
		binary.LittleEndian.PutUint16(b[2*i:], c)
	}
	return b
}

// DWORD encodes a 32-bit value's data.
func DWORD(v uint32) []byte {
	b := make([]byte, 4)
	binary.LittleEndian.PutUint32(b, v)
	return b
}

// String decodes a REG_SZ or REG_EXPAND_SZ value.
func (v RegValue) String() string {
	if len(v.Data) < 2 {
		return ""
	}
	u := make([]uint16, len(v.Data)/2)
	for i := range u {
		u[i] = binary.LittleEndian.Uint16(v.Data[2*i:])
	}
	return strings.TrimRight(string(utf16.Decode(u)), "\x00")
}

// DWORD decodes a REG_DWORD value.
func (v RegValue) DWORD() (uint32, bool) {
	if len(v.Data) != 4 {
		return 0, false
	}
	return binary.LittleEndian.Uint32(v.Data), true
}
