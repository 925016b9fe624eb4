package benchmarks

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmconv/terraform-provider-vmconv/engine"
	"github.com/vmconv/terraform-provider-vmconv/internal/libvirttest"
)

const (
	// fleetMax is the largest fleet: every job has a source file of its own.
	fleetMax = 8
	// fleetData is each source's data: 15 runs of 16 MiB of random bytes,
	// one every 64 MiB of a 1 GiB disk. With 8 jobs the pool (a tmpfs in
	// RAM) holds at most 8 uploads and 8 published copies, 3.75 GiB.
	fleetData = 15 * fleetRun
	fleetRun  = 16 << 20
	fleetSize = 1 * gib
)

// fleetSource is one job's source, as a VMDK (vmconv, qemu-img) and as raw
// (cp), each a file of its own so no job reads another's page cache.
type fleetSource struct{ raw, vmdk string }

// fleetFixtures makes fleetMax copies of a 1 GiB sparse disk with
// fleetData of random (incompressible) bytes, once.
func fleetFixtures(b *testing.B) []fleetSource {
	dir := filepath.Join(fixtureDir(b), "fleet-src")
	srcs := make([]fleetSource, fleetMax)
	ready := true
	for k := range srcs {
		srcs[k] = fleetSource{filepath.Join(dir, fmt.Sprintf("src%d.raw", k)), filepath.Join(dir, fmt.Sprintf("src%d.vmdk", k))}
		if _, err := os.Stat(srcs[k].vmdk); err != nil {
			ready = false
		}
	}
	if ready {
		return srcs
	}
	os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	f, err := os.Create(srcs[0].raw)
	if err != nil {
		b.Fatal(err)
	}
	f.Truncate(fleetSize)
	buf := make([]byte, fleetRun)
	for off := int64(0); off < fleetData/fleetRun*64<<20; off += 64 << 20 {
		rand.Read(buf)
		if _, err := f.WriteAt(buf, off); err != nil {
			b.Fatal(err)
		}
	}
	f.Close()
	run := func(name string, args ...string) {
		if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			b.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
		}
	}
	// The VMDKs are written last, so a half-made set is remade.
	for k := 1; k < fleetMax; k++ {
		run("cp", "--sparse=always", srcs[0].raw, srcs[k].raw)
	}
	run("qemu-img", "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=monolithicSparse", srcs[0].raw, srcs[0].vmdk)
	for k := 1; k < fleetMax; k++ {
		run("cp", "--sparse=always", srcs[0].vmdk, srcs[k].vmdk)
	}
	return srcs
}

// BenchmarkFleet measures the aggregate throughput of N conversions at
// once (N = 1, 2, 4, 8), each of its own 1 GiB VMDK with 240 MiB of data
// to qcow2, fixes and boot test off, all through one engine:
//
//   - vmconv-pool: published into the pool of a second libvirt host reached
//     as qemu+ssh over loopback (internal/libvirttest), with MaxParallel and
//     MaxUploads set to N so the engine's limits are not what is measured;
//     per job it also reports the convert, upload-slot wait, upload and
//     host-side clone times, from the engine's events;
//   - vmconv-pool-defaults (N = 8 only): the same with the engine's default
//     limits, to show what they do;
//   - vmconv-local: the same conversions to local files (output.path), the
//     conversion-only figure;
//   - qemu-img and cp: the anchors, N plain `qemu-img convert -O qcow2` and
//     N `cp --sparse=always` of the raw equivalents, each with an fsync;
//   - ssh-cat: N ssh streams of the VMDKs to `cat >/dev/null` on the same
//     sshd, the ceiling of the encrypted link on this machine.
//
// MB/s is data bytes (240 MiB a job) times N over the wall time from the
// first job's start to the last one's end. load1 is the load average when
// the contender started, as the machine is shared.
func BenchmarkFleet(b *testing.B) {
	srcs := fleetFixtures(b)
	h := libvirttest.Start(b)
	root := filepath.Join(fixtureDir(b), "fleet")
	os.RemoveAll(root)
	if err := os.MkdirAll(root, 0o755); err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(root)
	remote := func(n, uploads int) engine.Config {
		return engine.Config{WorkDir: filepath.Join(root, "work"), CacheDir: filepath.Join(root, "cache"),
			LibvirtURI: h.BareURI, SSHKeyFile: h.KeyFile, SSHKnownHosts: h.KnownHosts, MaxParallel: n, MaxUploads: uploads}
	}
	for _, n := range []int{1, 2, 4, 8} {
		b.Run(fmt.Sprintf("parallel=%d", n), func(b *testing.B) {
			b.Run("vmconv-pool", func(b *testing.B) { fleetPool(b, h, srcs[:n], remote(n, n)) })
			if n == fleetMax {
				b.Run("vmconv-pool-defaults", func(b *testing.B) { fleetPool(b, h, srcs[:n], remote(0, 0)) })
			}
			b.Run("vmconv-local", func(b *testing.B) {
				fleetLocal(b, srcs[:n], engine.Config{WorkDir: filepath.Join(root, "work"), CacheDir: filepath.Join(root, "cache"), MaxParallel: n}, filepath.Join(root, "local"))
			})
			b.Run("qemu-img", func(b *testing.B) {
				fleetTool(b, srcs[:n], filepath.Join(root, "anchor"), func(s fleetSource, dst string) []string {
					return []string{"qemu-img", "convert", "-f", "vmdk", "-O", "qcow2", s.vmdk, dst}
				})
			})
			b.Run("cp", func(b *testing.B) {
				fleetTool(b, srcs[:n], filepath.Join(root, "anchor"), func(s fleetSource, dst string) []string {
					return []string{"cp", "--sparse=always", s.raw, dst}
				})
			})
			b.Run("ssh-cat", func(b *testing.B) { fleetSSH(b, h, srcs[:n]) })
		})
	}
}

// jobTimes is when one job passed the points the engine's events mark.
type jobTimes struct {
	mu                                       sync.Mutex
	convStart, convEnd, pubStart, upEnd, end time.Time
}

func (t *jobTimes) sink() engine.Sink {
	return engine.SinkFunc(func(ev engine.Event) {
		t.mu.Lock()
		defer t.mu.Unlock()
		switch {
		case ev.Stage == engine.StageConvert && ev.Kind == engine.EventStageStarted:
			t.convStart = ev.Time
		case ev.Stage == engine.StageConvert && ev.Kind == engine.EventStageFinished:
			t.convEnd = ev.Time
		case ev.Kind == engine.EventProgress && ev.Stage == "" && ev.Fields["done_bytes"] == ev.Fields["total_bytes"] && ev.Fields["total_bytes"] != nil:
			t.upEnd = ev.Time
		case ev.Kind == engine.EventInfo && ev.Message == "volume published":
			// Publishing starts once an upload slot is free; the event
			// says how long it took from there.
			s, _ := ev.Fields["seconds"].(float64)
			t.pubStart = ev.Time.Add(-time.Duration(s * float64(time.Second)))
		}
	})
}

// runJobs runs job(k) for k < n at once and returns the wall time and the
// jobs' errors, joined.
func runJobs(n int, job func(k int) error) (time.Duration, error) {
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := time.Now()
	for k := 0; k < n; k++ {
		wg.Add(1)
		go func(k int) {
			defer wg.Done()
			if err := job(k); err != nil {
				errs[k] = fmt.Errorf("job %d: %w", k, err)
			}
		}(k)
	}
	wg.Wait()
	return time.Since(start), errors.Join(errs...)
}

func fleetPool(b *testing.B, h *libvirttest.Host, srcs []fleetSource, cfg engine.Config) {
	ctx := context.Background()
	n := len(srcs)
	e, err := engine.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	// The connection to the host is made once per engine, not per job.
	if err := e.CheckHost(ctx); err != nil {
		b.Fatal(err)
	}
	load := loadMetric(b)
	warmFleet(srcs, false)
	var elapsed time.Duration
	var all []*jobTimes
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		times := make([]*jobTimes, n)
		took, err := runJobs(n, func(k int) error {
			t := &jobTimes{}
			times[k] = t
			req := engine.Request{Source: engine.SourceSpec{Path: srcs[k].vmdk}, Output: engine.OutputSpec{Pool: h.Pool, Volume: fmt.Sprintf("fleet-%d.qcow2", k), Format: "qcow2"}}
			p, err := e.Plan(ctx, req, engine.PlanOptions{})
			if err != nil {
				return err
			}
			res, err := e.Apply(ctx, p, t.sink(), engine.ApplyOptions{})
			t.end = time.Now()
			if err != nil {
				return err
			}
			// A published volume holding less than the source's data
			// would make the throughput a lie.
			if v := res.Output.Volume; v == nil || v.Format != "qcow2" || v.Capacity != fleetSize || v.Sent < fleetData || v.Allocation < fleetData {
				return fmt.Errorf("published volume %+v: want qcow2 of %d bytes with at least %d of data sent and allocated", v, fleetSize, fleetData)
			}
			return nil
		})
		b.StopTimer()
		// Volumes go before a failure is reported, so that the next
		// count starts from an empty pool.
		for k := range srcs {
			if err := e.DeleteVolume(ctx, h.Pool, fmt.Sprintf("fleet-%d.qcow2", k)); err != nil {
				b.Fatal(err)
			}
		}
		if err != nil {
			b.Fatal(err)
		}
		elapsed += took
		// vol-list prints a header of two lines, then one volume a line.
		if left := strings.Split(strings.TrimSpace(h.Virsh(b, "vol-list", "--pool", h.Pool)), "\n")[2:]; len(left) > 0 {
			b.Fatalf("the pool still holds %q after the volumes were deleted", left)
		}
		all = append(all, times...)
		b.StartTimer()
	}
	b.ReportMetric(float64(n*fleetData)/1e6/(elapsed.Seconds()/float64(b.N)), "MB/s")
	load()
	var conv, up []span
	var convS, waitS, upS, cloneS float64
	for _, t := range all {
		if t.convEnd.IsZero() || t.pubStart.IsZero() || t.upEnd.IsZero() {
			b.Fatalf("a job's events did not mark its convert, upload and publish: %+v", t)
		}
		conv, up = append(conv, span{t.convStart, t.convEnd}), append(up, span{t.pubStart, t.upEnd})
		convS += t.convEnd.Sub(t.convStart).Seconds()
		waitS += t.pubStart.Sub(t.convEnd).Seconds()
		upS += t.upEnd.Sub(t.pubStart).Seconds()
		cloneS += t.end.Sub(t.upEnd).Seconds()
	}
	jobs := float64(len(all))
	b.ReportMetric(convS/jobs, "convert-s/job")
	b.ReportMetric(waitS/jobs, "slot-wait-s/job")
	b.ReportMetric(upS/jobs, "upload-s/job")
	// After the upload: refresh, the host's clone into the final name,
	// the stamp and the reports.
	b.ReportMetric(cloneS/jobs, "clone-s/job")
	// Aggregate rates while at least one job was in the phase.
	b.ReportMetric(float64(len(all)*fleetData)/1e6/union(conv).Seconds(), "convert-MB/s")
	b.ReportMetric(float64(len(all)*fleetData)/1e6/union(up).Seconds(), "upload-MB/s")
}

func fleetLocal(b *testing.B, srcs []fleetSource, cfg engine.Config, out string) {
	ctx := context.Background()
	n := len(srcs)
	os.MkdirAll(out, 0o755)
	e, err := engine.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	load := loadMetric(b)
	warmFleet(srcs, false)
	var elapsed time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		took, err := runJobs(n, func(k int) error {
			req := engine.Request{Source: engine.SourceSpec{Path: srcs[k].vmdk}, Output: engine.OutputSpec{Path: filepath.Join(out, fmt.Sprintf("fleet-%d.qcow2", k))}}
			p, err := e.Plan(ctx, req, engine.PlanOptions{})
			if err != nil {
				return err
			}
			_, err = e.Apply(ctx, p, nil, engine.ApplyOptions{})
			return err
		})
		b.StopTimer()
		os.RemoveAll(out)
		os.MkdirAll(out, 0o755)
		if err != nil {
			b.Fatal(err)
		}
		elapsed += took
		b.StartTimer()
	}
	b.ReportMetric(float64(n*fleetData)/1e6/(elapsed.Seconds()/float64(b.N)), "MB/s")
	load()
}

// fleetTool runs a plain tool on every source at once, each followed by an
// fsync of its output, as vmconv's local outputs are.
func fleetTool(b *testing.B, srcs []fleetSource, out string, argv func(s fleetSource, dst string) []string) {
	n := len(srcs)
	os.MkdirAll(out, 0o755)
	load := loadMetric(b)
	warmFleet(srcs, true)
	var elapsed time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		took, err := runJobs(n, func(k int) error {
			dst := filepath.Join(out, fmt.Sprintf("fleet-%d.out", k))
			a := argv(srcs[k], dst)
			if o, err := exec.Command(a[0], a[1:]...).CombinedOutput(); err != nil {
				return fmt.Errorf("%s: %v: %s", strings.Join(a, " "), err, o)
			}
			f, err := os.OpenFile(dst, os.O_RDWR, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			return f.Sync()
		})
		b.StopTimer()
		os.RemoveAll(out)
		os.MkdirAll(out, 0o755)
		if err != nil {
			b.Fatal(err)
		}
		elapsed += took
		b.StartTimer()
	}
	b.ReportMetric(float64(n*fleetData)/1e6/(elapsed.Seconds()/float64(b.N)), "MB/s")
	load()
}

// fleetSSH streams each VMDK through its own ssh connection to the host's
// sshd into `cat >/dev/null`: what encrypting the bytes costs here. Only
// the transfer is timed: every session first says it is ready, since
// opening one runs root's login shell on the host, which takes seconds on
// this machine. A VMDK stores its data and grain tables, no holes, so
// nearly all bytes sent are data.
func fleetSSH(b *testing.B, h *libvirttest.Host, srcs []fleetSource) {
	n := len(srcs)
	host, port, _ := strings.Cut(h.Addr, ":")
	load := loadMetric(b)
	warmFleet(srcs, false)
	var sent int64
	for _, s := range srcs {
		fi, err := os.Stat(s.vmdk)
		if err != nil {
			b.Fatal(err)
		}
		sent += fi.Size()
	}
	var elapsed time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		type session struct {
			cmd *exec.Cmd
			in  io.WriteCloser
			out *bufio.Reader
		}
		ss := make([]session, n)
		for k := range ss {
			cmd := exec.Command("ssh", "-F", "none", "-i", h.KeyFile, "-o", "UserKnownHostsFile="+h.KnownHosts, "-o", "StrictHostKeyChecking=yes",
				"-o", "BatchMode=yes", "-p", port, "root@"+host, "echo ready; exec cat >/dev/null")
			in, err := cmd.StdinPipe()
			if err != nil {
				b.Fatal(err)
			}
			out, err := cmd.StdoutPipe()
			if err != nil {
				b.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				b.Fatal(err)
			}
			ss[k] = session{cmd, in, bufio.NewReader(out)}
			defer cmd.Process.Kill()
		}
		for k, s := range ss {
			if l, err := s.out.ReadString('\n'); err != nil || l != "ready\n" {
				b.Fatalf("ssh session %d did not start: %q %v", k, l, err)
			}
		}
		b.StartTimer()
		took, err := runJobs(n, func(k int) error {
			f, err := os.Open(srcs[k].vmdk)
			if err != nil {
				return err
			}
			defer f.Close()
			if _, err := io.Copy(ss[k].in, f); err != nil {
				return err
			}
			ss[k].in.Close()
			io.Copy(io.Discard, ss[k].out)
			return ss[k].cmd.Wait()
		})
		if err != nil {
			b.Fatal(err)
		}
		elapsed += took
	}
	b.ReportMetric(float64(sent)/1e6/(elapsed.Seconds()/float64(b.N)), "MB/s")
	load()
}

func warmFleet(srcs []fleetSource, raw bool) {
	for _, s := range srcs {
		if raw {
			warm(s.raw)
		} else {
			warm(s.vmdk)
		}
	}
}

// loadMetric reads the 1-minute load average as the contender starts and
// returns a func that reports it (ResetTimer drops metrics reported before).
func loadMetric(b *testing.B) func() {
	v := -1.0
	if l, err := os.ReadFile("/proc/loadavg"); err == nil {
		v, _ = strconv.ParseFloat(strings.Fields(string(l))[0], 64)
	}
	return func() { b.ReportMetric(v, "load1") }
}

type span struct{ from, to time.Time }

// union is how long at least one of spans was open.
func union(spans []span) time.Duration {
	sort.Slice(spans, func(i, j int) bool { return spans[i].from.Before(spans[j].from) })
	var total time.Duration
	var cur span
	for i, s := range spans {
		switch {
		case i == 0:
			cur = s
		case s.from.After(cur.to):
			total += cur.to.Sub(cur.from)
			cur = s
		case s.to.After(cur.to):
			cur.to = s.to
		}
	}
	if len(spans) > 0 {
		total += cur.to.Sub(cur.from)
	}
	return total
}
