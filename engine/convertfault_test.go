package engine_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmconv/terraform-provider-vmconv/engine"
	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/internal/testimg"
)

// TestCorruptGrainNamesTheSourceAndPosition: a streamOptimized VMDK whose
// headers, grain directory and tables are sound, but one grain's data is
// damaged, passes the plan and fails mid-conversion. The diagnostic must
// name the source file and the position in the guest's disk with qemu's
// reason, not the output and not qemu-img's argv; and nothing may be left
// beside the output (no lock file either).
func TestCorruptGrainNamesTheSourceAndPosition(t *testing.T) {
	const size = 8 * mib
	const badAt = 3*mib + 128<<10 // a grain of the second run of data
	data := testimg.Layer{{Offset: 0, Length: 1 * mib, Byte: 0x11}, {Offset: 3 * mib, Length: 2 * mib, Byte: 0x22}}
	for _, tc := range []struct {
		name   string
		damage testimg.GrainDamage
		ova    bool // the disk inside an OVA, read from the cache
	}{
		{"deflate data", testimg.DeflateData, false},
		{"grain marker size", testimg.MarkerSize, false},
		{"deflate data in an OVA", testimg.DeflateData, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, out := t.TempDir(), t.TempDir()
			head := filepath.Join(src, "disk.vmdk")
			if err := testimg.StreamOptimized(head, size, data); err != nil {
				t.Fatal(err)
			}
			if err := testimg.CorruptGrain(head, badAt, tc.damage); err != nil {
				t.Fatal(err)
			}

			source := engine.SourceSpec{Path: head}
			if tc.ova {
				ova := filepath.Join(src, "disk.ova")
				if err := testimg.OVA(ova, "vm", testimg.OVF("vm", "disk.vmdk", size/mib, 1, 512, false), head); err != nil {
					t.Fatal(err)
				}
				os.Remove(head)
				source, head = engine.SourceSpec{OVA: ova}, ova // the file the user named
			}
			e := newEngine(t)
			outPath := filepath.Join(out, "disk.qcow2")
			p, err := e.Plan(context.Background(), engine.Request{Source: source, Output: engine.OutputSpec{Path: outPath}}, engine.PlanOptions{})
			if err != nil {
				// A stricter plan may catch a bad marker from the headers
				// alone; it must then say so about this file.
				if fe, ok := fault.As(err); !ok || fe.Code != fault.CorruptImage || fe.File != head {
					t.Fatalf("plan: got %v, want corrupt_image about %s", err, head)
				}
				t.Logf("refused at plan: %v", err)
				return
			}
			_, err = e.Apply(context.Background(), p, nil, engine.ApplyOptions{})
			fe, ok := fault.As(err)
			if !ok || fe.Code != fault.CorruptImage || fe.Stage != string(engine.StageConvert) {
				t.Fatalf("apply: got %v, want corrupt_image at convert", err)
			}
			text := fe.Error() + " " + fe.Hint
			for _, f := range fe.Facts {
				text += " " + f.Label + ": " + f.Value
			}
			t.Logf("diagnostic: %s", text)
			if fe.File != head {
				t.Errorf("names %q, want the source %s", fe.File, head)
			}
			for _, want := range []string{"3.1 MiB", "byte 3276800", "Invalid argument", "qemu-img convert"} {
				if !strings.Contains(text, want) {
					t.Errorf("diagnostic lacks %q", want)
				}
			}
			for _, bad := range []string{outPath, "vmconv-tmp", "overlay.qcow2", " -O ", "-f qcow2", e.Config().CacheDir} {
				if strings.Contains(text, bad) {
					t.Errorf("diagnostic shows %q (the output or qemu-img's argv)", bad)
				}
			}
			if _, err := os.Stat(outPath); err == nil {
				t.Error("a failed conversion left a file at the output path")
			}
			assertNoLeftovers(t, out)
		})
	}
}
