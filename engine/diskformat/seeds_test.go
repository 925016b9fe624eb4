package diskformat

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/vmconv/terraform-provider-vmconv/engine/internal/fuzzimg"
)

// TestQemuImagesAccepted checks the strict checks accept every real image
// in the fuzz seed corpora (made by qemu-img: snapshots, backing files,
// compressed clusters, extended L2, fixed and dynamic kinds), with the
// virtual size qemu-img gave them.
func TestQemuImagesAccepted(t *testing.T) {
	for target, f := range map[string]Format{"FuzzQcow2": QCOW2, "FuzzVHD": VHD, "FuzzVHDX": VHDX, "FuzzVDI": VDI} {
		seeds, _ := filepath.Glob(filepath.Join("testdata", "fuzz", target, "qemu-*"))
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
				im := fuzzimg.Decode(size, data)
				info, err := Inspect(f, im, im.Size)
				if err != nil {
					t.Fatalf("a real %s image is refused: %v", f, err)
				}
				// The generator makes 4 MiB disks; qemu's VHD rounds up to
				// its CHS geometry.
				if info.VirtualSize < 4<<20 || info.VirtualSize > 4<<20+64<<10 {
					t.Errorf("virtual size %d, want 4 MiB", info.VirtualSize)
				}
				if len(info.Warnings) != 0 {
					t.Errorf("warnings on a clean image: %v", info.Warnings)
				}
			})
		}
	}
}
