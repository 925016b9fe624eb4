package vmdk

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/vmconv/terraform-provider-vmconv/engine/internal/fuzzimg"
)

// TestRealExtentsAccepted checks the strict checks accept every extent in
// the fuzz seed corpora: qemu-img's monolithicSparse (with and without
// zeroed grains), streamOptimized and split extents, VMware's stream
// layout, and ESX vmfsSparse and seSparse snapshots.
func TestRealExtentsAccepted(t *testing.T) {
	check := map[string]func(im *fuzzimg.Image) error{
		"FuzzSparse": func(im *fuzzimg.Image) error {
			h, err := ReadSparseHeader(im, im.Size)
			if err != nil {
				return err
			}
			return h.CheckTables(im, im.Size)
		},
		"FuzzCOWD": func(im *fuzzimg.Image) error {
			h, err := ReadCOWDHeader(im, im.Size)
			if err != nil {
				return err
			}
			return h.CheckTables(im, im.Size)
		},
		"FuzzSESparse": func(im *fuzzimg.Image) error {
			h, err := ReadSESparseHeader(im, im.Size)
			if err != nil {
				return err
			}
			return h.CheckTables(im, im.Size)
		},
	}
	for target, fn := range check {
		seeds, _ := filepath.Glob(filepath.Join("testdata", "fuzz", target, "*"))
		if len(seeds) == 0 {
			t.Fatalf("no seeds for %s", target)
		}
		for _, p := range seeds {
			t.Run(target+"/"+filepath.Base(p), func(t *testing.T) {
				b, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				size, data, err := fuzzimg.ReadCorpus(b)
				if err != nil {
					t.Fatal(err)
				}
				if err := fn(fuzzimg.Decode(size, data)); err != nil {
					t.Fatalf("a real extent is refused: %v", err)
				}
			})
		}
	}
}
