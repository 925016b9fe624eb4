package volume

import (
	"os"
	"path/filepath"
	"testing"
)

func TestFileExtents(t *testing.T) {
	p := filepath.Join(t.TempDir(), "sparse")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	const mib = 1 << 20
	f.Truncate(64 * mib)
	block := make([]byte, mib)
	for i := range block {
		block[i] = 0xa5
	}
	f.WriteAt(block, 8*mib)  // data at [8, 9) MiB
	f.WriteAt(block, 40*mib) // and at [40, 41) MiB; a hole to the end
	f.Close()

	src, err := OpenFile(p)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	ext, err := src.Extents()
	if err != nil {
		t.Fatal(err)
	}
	var end int64
	for _, e := range ext {
		if e.Offset != end {
			t.Fatalf("extents leave a gap or overlap at %d: %+v", end, ext)
		}
		end += e.Length
	}
	if end != 64*mib {
		t.Fatalf("extents cover %d bytes, not the file's 64 MiB: %+v", end, ext)
	}
	// File systems may round data to their block size; they may not
	// report the holes between as data.
	if got := DataBytes(ext); got < 2*mib || got > 4*mib {
		t.Fatalf("%d bytes of data, want about 2 MiB: %+v", got, ext)
	}
	if ext[len(ext)-1].Data {
		t.Fatalf("the trailing hole is reported as data: %+v", ext)
	}
}
