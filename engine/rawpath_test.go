package engine_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/vmconv/terraform-provider-vmconv/engine"
	"github.com/vmconv/terraform-provider-vmconv/internal/testimg"
)

// rawSource writes a sparse raw disk: size bytes, a patterned 1 MiB every
// 3 MiB. thick also writes the zeros between them, as a thick-provisioned
// disk holds them.
func rawSource(t *testing.T, path string, size int64, thick bool) []byte {
	t.Helper()
	want := make([]byte, size)
	for off := int64(0); off < size; off += 3 * mib {
		b := want[off:min(off+mib, size)]
		for i := range b {
			b[i] = byte(int64(i)*7 + off/mib + int64(i)/4096)
		}
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Truncate(size)
	for off := int64(0); off < size; off += 3 * mib {
		end := min(off+mib, size)
		if thick {
			end = min(off+3*mib, size)
		}
		if _, err := f.WriteAt(want[off:end], off); err != nil {
			t.Fatal(err)
		}
	}
	return want
}

func allocated(t *testing.T, path string) int64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512
}

// applyCollect applies p and returns the messages of CONVERT's info events.
func applyCollect(t *testing.T, e *engine.Engine, p *engine.Plan) (*engine.Result, []string, error) {
	t.Helper()
	var msgs []string
	sink := engine.SinkFunc(func(ev engine.Event) {
		if ev.Stage == engine.StageConvert && ev.Kind == engine.EventInfo {
			msgs = append(msgs, ev.Message)
		}
	})
	r, err := e.Apply(context.Background(), p, sink, engine.ApplyOptions{})
	return r, msgs, err
}

// TestRawPathCopiesInKernel converts raw sources (a raw image, a flat VMDK,
// a thick raw image) to raw outputs: the data is copied in the kernel, not
// by qemu-img, the holes stay holes, a thick source's zeros become holes as
// qemu-img's zero detection would make them, and the output is the source
// byte for byte. A qcow2 output of the same source still goes through
// qemu-img.
func TestRawPathCopiesInKernel(t *testing.T) {
	const size = 24 * mib
	src := t.TempDir()
	thin := filepath.Join(src, "thin.raw")
	want := rawSource(t, thin, size, false)
	thick := filepath.Join(src, "thick.raw")
	rawSource(t, thick, size, true)
	flat := filepath.Join(src, "flat.vmdk")
	if err := testimg.Run("qemu-img", "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=monolithicFlat", thin, flat); err != nil {
		t.Fatal(err)
	}
	before := sumDir(t, src)
	e := newEngine(t)
	for _, tc := range []struct {
		name, source, srcFormat, format string
		kernel, punched                 bool
	}{
		{"raw", thin, "raw", "raw", true, false},
		{"flat-vmdk", flat, "", "raw", true, false},
		{"thick-raw", thick, "raw", "raw", true, true},
		{"raw-to-qcow2", thin, "raw", "qcow2", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "disk."+tc.format)
			p, err := e.Plan(context.Background(), engine.Request{Source: engine.SourceSpec{Path: tc.source, Format: tc.srcFormat}, Output: engine.OutputSpec{Path: out, Format: tc.format}}, engine.PlanOptions{})
			if err != nil {
				t.Fatal(err)
			}
			planned := strings.Contains(p.Stage(engine.StageConvert).Reason, "copied in the kernel")
			if planned != tc.kernel {
				t.Errorf("the plan's CONVERT says %q", p.Stage(engine.StageConvert).Reason)
			}
			r, msgs, err := applyCollect(t, e, p)
			if err != nil {
				t.Fatal(err)
			}
			joined := strings.Join(msgs, "\n")
			// The thick source's zeros are data to the file system.
			copied := "copied 8 MiB of data in the kernel"
			if tc.punched {
				copied = "copied 24 MiB of data in the kernel"
			}
			if got := strings.Contains(joined, copied); got != tc.kernel {
				t.Errorf("kernel copy %v, want %v; events:\n%s", got, tc.kernel, joined)
			}
			if got := strings.Contains(joined, "deallocated 16 MiB of zero blocks"); got != tc.punched {
				t.Errorf("zero blocks punched %v, want %v; events:\n%s", got, tc.punched, joined)
			}
			if r.Output.SHA256 != sumFile(t, out) {
				t.Error("the reported sha256 is not the output's")
			}
			if tc.format == "raw" {
				got, _ := os.ReadFile(out)
				if !bytes.Equal(got, want) {
					t.Fatal("the output is not the source's disk byte for byte")
				}
				if a := allocated(t, out); a > 9*mib {
					t.Errorf("the output allocates %d bytes for 8 MiB of data", a)
				}
			} else if err := testimg.Run("qemu-img", "compare", "-f", "raw", "-F", "qcow2", thin, out); err != nil {
				t.Fatal(err)
			}
		})
	}
	if after := sumDir(t, src); !equalMaps(before, after) {
		t.Fatal("the source folder changed")
	}
}

// TestRawPathFullDisk fills the output's file system during a kernel copy:
// the same no_space diagnostic as qemu-img's, and nothing left behind.
func TestRawPathFullDisk(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root; CI runs as root")
	}
	src, out := t.TempDir(), t.TempDir()
	thin := filepath.Join(src, "big.raw")
	rawSource(t, thin, 96*mib, false) // 32 MiB of data
	if err := syscall.Mount("tmpfs", out, "tmpfs", 0, "size=48m"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	defer syscall.Unmount(out, 0)
	e := newEngine(t)
	outPath := filepath.Join(out, "big.raw")
	p, err := e.Plan(context.Background(), engine.Request{Source: engine.SourceSpec{Path: thin, Format: "raw"}, Output: engine.OutputSpec{Path: outPath, Format: "raw"}}, engine.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r := p.Stage(engine.StageConvert).Reason; !strings.Contains(r, "copied in the kernel") {
		t.Fatalf("this test wants the kernel copy; the plan says %q", r)
	}
	applyFillingUp(t, e, p, out, outPath)
}
