// Package benchmarks holds vmconv's benchmarks, run by `make bench`, never
// by `make test`. Each compares vmconv with the plain tools in the same run
// on the same fixture, so machine speed cancels out of the comparison.
package benchmarks

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vmconv/terraform-provider-vmconv/engine"
)

const gib = 1 << 30

// fixtureDir holds the big inputs between runs (make bench sets it).
func fixtureDir(b *testing.B) string {
	d := os.Getenv("VMCONV_BENCH_DIR")
	if d == "" {
		d = filepath.Join(os.TempDir(), "vmconv-bench")
	}
	if err := os.MkdirAll(d, 0o755); err != nil {
		b.Fatal(err)
	}
	return d
}

// sparseFixture is a 4 GiB disk, half of it allocated in 64 MiB runs of
// random (incompressible) data, as a raw file and a monolithicSparse VMDK.
func sparseFixture(b *testing.B) (raw, vmdk string, allocated int64) {
	dir := fixtureDir(b)
	raw, vmdk = filepath.Join(dir, "sparse4g.raw"), filepath.Join(dir, "sparse4g.vmdk")
	const size, run = 4 * gib, 64 << 20
	allocated = size / 2
	if _, err := os.Stat(vmdk); err == nil {
		return raw, vmdk, allocated
	}
	f, err := os.Create(raw)
	if err != nil {
		b.Fatal(err)
	}
	f.Truncate(size)
	buf := make([]byte, run)
	for off := int64(0); off < size; off += 2 * run {
		rand.Read(buf)
		if _, err := f.WriteAt(buf, off); err != nil {
			b.Fatal(err)
		}
	}
	f.Close()
	if out, err := exec.Command("qemu-img", "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=monolithicSparse", raw, vmdk+".tmp").CombinedOutput(); err != nil {
		b.Fatalf("%v: %s", err, out)
	}
	os.Rename(vmdk+".tmp", vmdk)
	return raw, vmdk, allocated
}

// warm reads a file so every contender starts with the source cached.
func warm(paths ...string) {
	for _, p := range paths {
		exec.Command("cat", p).Run()
	}
}

func fsyncFile(b *testing.B, p string) {
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		b.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
	f.Close()
}

// peak tracks the largest resident set of the processes a benchmark ran.
type peak struct{ kib int64 }

// cmd runs a plain tool and samples its peak resident set (VmHWM, which
// starts afresh at exec) until it exits.
func (p *peak) cmd(b *testing.B, name string, args ...string) {
	c := exec.Command(name, args...)
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, &out
	if err := c.Start(); err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	status := fmt.Sprintf("/proc/%d/status", c.Process.Pid)
	for {
		if st, err := os.ReadFile(status); err == nil {
			for _, l := range strings.Split(string(st), "\n") {
				var v int64
				if _, err := fmt.Sscanf(l, "VmHWM: %d kB", &v); err == nil {
					p.kib = max(p.kib, v)
				}
			}
		}
		select {
		case err := <-done:
			if err != nil {
				b.Fatalf("%s: %v: %s", name, err, out.String())
			}
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func report(b *testing.B, allocated int64, elapsed time.Duration, p *peak) {
	b.ReportMetric(float64(allocated)/(1<<20)/(elapsed.Seconds()/float64(b.N)), "alloc-MiB/s")
	b.ReportMetric(float64(p.kib)/1024, "tool-maxRSS-MiB")
}

// BenchmarkConvert compares, on a 4 GiB VMDK with 2 GiB of random data:
// vmconv (plan, flatten, convert with tuned qemu-img options, sha256 of the
// output, fsync, rename, report); plain `qemu-img convert` with default
// options; and `cp --sparse=always` of the raw equivalent. Each result ends
// with an fsync of the output so all three deliver durable data.
func BenchmarkConvert(b *testing.B) {
	raw, vmdk, allocated := sparseFixture(b)
	out := b.TempDir()
	b.Run("vmconv-qcow2", func(b *testing.B) {
		e, err := engine.New(engine.Config{WorkDir: b.TempDir(), CacheDir: b.TempDir()})
		if err != nil {
			b.Fatal(err)
		}
		warm(vmdk)
		var convert, total time.Duration
		pk := &peak{}
		stop := engine.ObserveTools(engine.ToolObserver{Exited: func(_ string, kib int64) { pk.kib = max(pk.kib, kib) }})
		defer stop()
		var ms runtime.MemStats
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			dst := filepath.Join(out, fmt.Sprintf("vmconv-%d.qcow2", i))
			start := time.Now()
			p, err := e.Plan(context.Background(), engine.Request{Source: engine.SourceSpec{Path: vmdk}, Output: engine.OutputSpec{Path: dst}}, engine.PlanOptions{})
			if err != nil {
				b.Fatal(err)
			}
			var convStart time.Time
			sink := engine.SinkFunc(func(ev engine.Event) {
				if ev.Stage == engine.StageConvert && ev.Kind == engine.EventStageStarted {
					convStart = time.Now()
				}
				if ev.Stage == engine.StageConvert && ev.Kind == engine.EventProgress && ev.Percent == 100 {
					convert += time.Since(convStart)
				}
			})
			if _, err := e.Apply(context.Background(), p, sink, engine.ApplyOptions{}); err != nil {
				b.Fatal(err)
			}
			total += time.Since(start)
			b.StopTimer()
			os.Remove(dst)
			os.Remove(dst + ".vmconv.json")
			b.StartTimer()
		}
		report(b, allocated, total, pk)
		b.ReportMetric(float64(allocated)/(1<<20)/(convert.Seconds()/float64(b.N)), "qemu-img-phase-MiB/s")
		runtime.ReadMemStats(&ms)
		b.ReportMetric(float64(ms.HeapSys)/(1<<20), "engine-heap-MiB")
	})
	b.Run("vmconv-raw-from-raw", func(b *testing.B) {
		benchVmconvRaw(b, raw, out, allocated)
	})
	b.Run("sha256-of-raw", func(b *testing.B) {
		// The floor of every vmconv figure: output_sha256 hashes the whole
		// virtual disk, holes as zeros, which cp never does.
		warm(raw)
		var total time.Duration
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			start := time.Now()
			f, err := os.Open(raw)
			if err != nil {
				b.Fatal(err)
			}
			h := sha256.New()
			if _, err := io.CopyBuffer(h, f, make([]byte, 4<<20)); err != nil {
				b.Fatal(err)
			}
			f.Close()
			total += time.Since(start)
		}
		b.ReportMetric(float64(allocated)/(1<<20)/(total.Seconds()/float64(b.N)), "alloc-MiB/s")
	})
	b.Run("qemu-img-default-qcow2", func(b *testing.B) {
		benchTool(b, vmdk, allocated, func(i int) (string, []string) {
			dst := filepath.Join(out, fmt.Sprintf("plain-%d.qcow2", i))
			return dst, []string{"qemu-img", "convert", "-f", "vmdk", "-O", "qcow2", vmdk, dst}
		})
	})
	b.Run("cp-sparse-raw", func(b *testing.B) {
		benchTool(b, raw, allocated, func(i int) (string, []string) {
			dst := filepath.Join(out, fmt.Sprintf("cp-%d.raw", i))
			return dst, []string{"cp", "--sparse=always", raw, dst}
		})
	})
}

// benchTool times a plain tool's run plus an fsync of its output, the way
// vmconv's figure includes its own fsync.
func benchTool(b *testing.B, src string, allocated int64, next func(i int) (dst string, argv []string)) {
	warm(src)
	var total time.Duration
	pk := &peak{}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		dst, argv := next(i)
		start := time.Now()
		pk.cmd(b, argv[0], argv[1:]...)
		fsyncFile(b, dst)
		total += time.Since(start)
		b.StopTimer()
		os.Remove(dst)
		b.StartTimer()
	}
	report(b, allocated, total, pk)
}

// benchVmconvRaw is vmconv on the path `cp` takes: a raw source to a raw
// output with nothing to fix, copied in the kernel, then hashed (and its
// zero blocks punched) while it is flushed.
func benchVmconvRaw(b *testing.B, raw, out string, allocated int64) {
	e, err := engine.New(engine.Config{WorkDir: b.TempDir(), CacheDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	warm(raw)
	var total time.Duration
	kernel := false
	sink := engine.SinkFunc(func(ev engine.Event) {
		if ev.Stage == engine.StageConvert && ev.Fields["copy"] == "raw" {
			kernel = ev.Fields["kernel"] == true
		}
	})
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		dst := filepath.Join(out, fmt.Sprintf("vmconv-%d.raw", i))
		kernel = false
		start := time.Now()
		p, err := e.Plan(context.Background(), engine.Request{Source: engine.SourceSpec{Path: raw, Format: "raw"}, Output: engine.OutputSpec{Path: dst, Format: "raw"}}, engine.PlanOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := e.Apply(context.Background(), p, sink, engine.ApplyOptions{}); err != nil {
			b.Fatal(err)
		}
		total += time.Since(start)
		b.StopTimer()
		if !kernel {
			b.Fatal("the raw output did not take the kernel copy")
		}
		os.Remove(dst)
		os.Remove(dst + ".vmconv.json")
		b.StartTimer()
	}
	// No tool runs on this path: the copy is a system call of the engine's.
	b.ReportMetric(float64(allocated)/(1<<20)/(total.Seconds()/float64(b.N)), "alloc-MiB/s")
}
