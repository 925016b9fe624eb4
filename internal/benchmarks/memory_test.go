package benchmarks

import (
	"bufio"
	"context"
	"crypto/rand"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vmconv/terraform-provider-vmconv/engine"
)

// memFixture is a sparse VMDK of size bytes holding the same 256 MiB of
// random data (16 runs of 16 MiB) whatever its size, spread over the disk.
func memFixture(b *testing.B, size int64) (vmdk, raw string) {
	dir := fixtureDir(b)
	raw = filepath.Join(dir, fmt.Sprintf("mem%dg.raw", size/gib))
	vmdk = strings.TrimSuffix(raw, ".raw") + ".vmdk"
	if _, err := os.Stat(vmdk); err == nil {
		return vmdk, raw
	}
	f, err := os.Create(raw)
	if err != nil {
		b.Fatal(err)
	}
	f.Truncate(size)
	const runs, run = 16, 16 << 20
	buf := make([]byte, run)
	for i := int64(0); i < runs; i++ {
		rand.Read(buf)
		off := i * (size / runs) / run * run
		if _, err := f.WriteAt(buf, off); err != nil {
			b.Fatal(err)
		}
	}
	f.Close()
	if out, err := exec.Command("qemu-img", "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=monolithicSparse", raw, vmdk+".tmp").CombinedOutput(); err != nil {
		b.Fatalf("%v: %s", err, out)
	}
	os.Rename(vmdk+".tmp", vmdk)
	return vmdk, raw
}

// selfHWM reads this process's peak resident set in KiB; resetHWM starts
// it afresh (clear_refs 5, Linux 4.0 and later).
func selfHWM() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		var v int64
		if _, err := fmt.Sscanf(s.Text(), "VmHWM: %d kB", &v); err == nil {
			return v
		}
	}
	return 0
}

func resetHWM() { os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// writtenBytes is what this process sent to storage (/proc/self/io's
// write_bytes), which includes what its waited-for children did: the
// kernel adds a reaped child's I/O to its parent's.
func writtenBytes() int64 {
	var n int64
	if b, err := os.ReadFile("/proc/self/io"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			fmt.Sscanf(l, "write_bytes: %d", &n)
		}
	}
	return n
}

// allocatedUnder sums the allocated bytes of every file under dir.
func allocatedUnder(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if fi, err := d.Info(); err == nil {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				n += st.Blocks * 512
			}
		}
		return nil
	})
	return n
}

// BenchmarkMemory converts sparse 1, 10 and 100 GiB disks holding the same
// 256 MiB of data, to qcow2 (qemu-img) and to raw (the kernel copy from the
// raw equivalent), and reports the engine's and its tools' peak resident
// sets, the peak space used in the work and cache folders (sampled every
// 20 ms), and the bytes written per apply against the output's allocation.
func BenchmarkMemory(b *testing.B) {
	for _, size := range []int64{1 * gib, 10 * gib, 100 * gib} {
		vmdk, raw := memFixture(b, size)
		for _, format := range []string{"qcow2", "raw"} {
			b.Run(fmt.Sprintf("%dGiB-%s", size/gib, format), func(b *testing.B) {
				src, spec := vmdk, engine.SourceSpec{Path: vmdk}
				if format == "raw" {
					src, spec = raw, engine.SourceSpec{Path: raw, Format: "raw"}
				}
				benchMemory(b, src, spec, format)
			})
		}
	}
}

func benchMemory(b *testing.B, src string, spec engine.SourceSpec, format string) {
	work, cache, out := b.TempDir(), b.TempDir(), b.TempDir()
	e, err := engine.New(engine.Config{WorkDir: work, CacheDir: cache})
	if err != nil {
		b.Fatal(err)
	}
	warm(src)
	var toolKiB, selfKiB, spaceMax, written, outAlloc int64
	var mu sync.Mutex
	stop := engine.ObserveTools(engine.ToolObserver{Exited: func(_ string, kib int64) {
		mu.Lock()
		toolKiB = max(toolKiB, kib)
		mu.Unlock()
	}})
	defer stop()
	var total time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		dst := filepath.Join(out, fmt.Sprintf("mem-%d.%s", i, format))
		done := make(chan struct{})
		sampled := make(chan int64)
		go func() {
			var m int64
			for {
				m = max(m, allocatedUnder(work)+allocatedUnder(cache))
				select {
				case <-done:
					sampled <- m
					return
				case <-time.After(20 * time.Millisecond):
				}
			}
		}()
		resetHWM()
		w0 := writtenBytes()
		start := time.Now()
		p, err := e.Plan(context.Background(), engine.Request{Source: spec, Output: engine.OutputSpec{Path: dst, Format: format}}, engine.PlanOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := e.Apply(context.Background(), p, nil, engine.ApplyOptions{}); err != nil {
			b.Fatal(err)
		}
		total += time.Since(start)
		b.StopTimer()
		close(done)
		spaceMax = max(spaceMax, <-sampled)
		written += writtenBytes() - w0
		outAlloc += allocatedUnder(out)
		selfKiB = max(selfKiB, selfHWM())
		os.Remove(dst)
		os.Remove(dst + ".vmconv.json")
		b.StartTimer()
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "s/apply")
	b.ReportMetric(float64(selfKiB)/1024, "engine-maxRSS-MiB")
	b.ReportMetric(float64(toolKiB)/1024, "tool-maxRSS-MiB")
	b.ReportMetric(float64(spaceMax)/(1<<20), "work+cache-peak-MiB")
	b.ReportMetric(float64(written)/float64(outAlloc), "written/output")
}
