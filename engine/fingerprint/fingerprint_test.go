package fingerprint

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestFingerprintSensitivity(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big")
	f, _ := os.Create(big)
	f.Truncate(512 << 20) // sparse: sampling must not read it all
	f.Close()
	mtime := time.Unix(1700000000, 0)
	os.Chtimes(big, mtime, mtime)
	base, _, err := Files([]string{big})
	if err != nil {
		t.Fatal(err)
	}
	mutate := func(name string, fn func()) {
		t.Run(name, func(t *testing.T) {
			fn()
			got, _, err := Files([]string{big})
			if err != nil {
				t.Fatal(err)
			}
			if got == base {
				t.Fatal("fingerprint did not change")
			}
			base = got
		})
	}
	write := func(off int64) func() {
		return func() {
			f, _ := os.OpenFile(big, os.O_RDWR, 0)
			f.WriteAt([]byte{1}, off)
			f.Close()
			os.Chtimes(big, mtime, mtime) // keep the mtime: only sampling can see it
		}
	}
	mutate("header byte", write(100))
	mutate("footer byte", write(512<<20-10))
	mutate("mtime only", func() { mtime = mtime.Add(time.Second); os.Chtimes(big, mtime, mtime) })
	mutate("size", func() { os.Truncate(big, 513<<20); os.Chtimes(big, mtime, mtime) })
	t.Run("an unsampled byte with the mtime kept is not seen (documented limit)", func(t *testing.T) {
		write(200 << 20)() // between samples
		got, _, _ := Files([]string{big})
		if got != base {
			t.Skip("the byte happened to fall in a sample")
		}
	})
	t.Run("order and names matter", func(t *testing.T) {
		other := filepath.Join(dir, "other")
		os.WriteFile(other, []byte("x"), 0o644)
		a, _, _ := Files([]string{big, other})
		b, _, _ := Files([]string{other, big})
		if a == b {
			t.Fatal("reordering the chain kept the fingerprint")
		}
	})
}
