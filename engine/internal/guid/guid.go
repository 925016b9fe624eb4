// Package guid encodes textual GUIDs in the mixed-endian byte order that
// UEFI, GPT and VHDX store them in (the first three fields little endian).
package guid

import (
	"encoding/hex"
	"fmt"
	"strings"
)

// Parse encodes s, "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" in either case.
func Parse(s string) ([]byte, error) {
	raw, err := hex.DecodeString(strings.ReplaceAll(s, "-", ""))
	if err != nil || len(raw) != 16 || len(s) != 36 {
		return nil, fmt.Errorf("%q is not a GUID", s)
	}
	return []byte{raw[3], raw[2], raw[1], raw[0], raw[5], raw[4], raw[7], raw[6],
		raw[8], raw[9], raw[10], raw[11], raw[12], raw[13], raw[14], raw[15]}, nil
}

// Must is Parse for the constants of a format.
func Must(s string) []byte {
	b, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return b
}
