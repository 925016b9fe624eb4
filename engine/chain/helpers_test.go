package chain_test

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"sort"
	"testing"
)

// checksumDir hashes every regular file's name and content in dir.
func checksumDir(t *testing.T, dir string) string {
	t.Helper()
	h := sha256.New()
	var names []string
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			names = append(names, p)
		}
		return nil
	})
	sort.Strings(names)
	for _, n := range names {
		io.WriteString(h, n)
		f, err := os.Open(n)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(h, f)
		f.Close()
	}
	return hex.EncodeToString(h.Sum(nil))
}

// writeVHDDiff turns a copy of a dynamic VHD into a differencing disk by
// setting the footer's disk type to 4 and fixing its checksum, which is
// all that identifies one.
func writeVHDDiff(t *testing.T, base, child string) {
	t.Helper()
	b, err := os.ReadFile(base)
	if err != nil {
		t.Fatal(err)
	}
	for _, off := range []int{0, len(b) - 512} {
		f := b[off : off+512]
		binary.BigEndian.PutUint32(f[60:], 4)
		var s uint32
		for i, c := range f {
			if i < 64 || i >= 68 {
				s += uint32(c)
			}
		}
		binary.BigEndian.PutUint32(f[64:], ^s)
	}
	if err := os.WriteFile(child, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
