package benchmarks

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/vmconv/terraform-provider-vmconv/engine"
	"github.com/vmconv/terraform-provider-vmconv/engine/accel"
	"github.com/vmconv/terraform-provider-vmconv/engine/boottest"
	"github.com/vmconv/terraform-provider-vmconv/internal/acctest"
	"github.com/vmconv/terraform-provider-vmconv/internal/vcsimtest"
)

// BenchmarkWarmCutover migrates the plain fixture guest from govmomi's
// vCenter simulator (with the test kit's changed block tracking) twice in
// the same run, with fixes and the boot test: cold (a snapshot, the copy,
// the fixes, the conversion, the boot test), and warm (a full sync and a
// sync while the guest writes 16 MiB files, then the cutover: the
// shutdown, the final sync of the last file, the fixes, the conversion,
// the boot test). It reports the cold migration's wall time, the warm
// one's downtime, their ratio, and where the downtime went.
func BenchmarkWarmCutover(b *testing.B) {
	fx := acctest.GuestFixtures(b)
	work := filepath.Join(fixtureDir(b), "warm")
	os.RemoveAll(work)
	os.MkdirAll(work, 0o755)
	raw := filepath.Join(work, "plain.raw")
	if out, err := exec.Command("qemu-img", "convert", "-O", "raw", fx.Path(fx.Variants["plain"].Disk), raw).CombinedOutput(); err != nil {
		b.Fatalf("qemu-img: %v: %s", err, out)
	}
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		e, err := engine.New(engine.Config{WorkDir: filepath.Join(work, "scratch"), CacheDir: filepath.Join(work, fmt.Sprintf("cache-%d", i))})
		if err != nil {
			b.Fatal(err)
		}
		a, err := e.Accel(ctx)
		if err != nil {
			b.Fatal(err)
		}
		guestfsEnv := append(os.Environ(), "LIBGUESTFS_BACKEND=direct")
		guestfsEnv = append(guestfsEnv, accel.GuestfsEnv(a.Mode)...)
		migrate := func(warm *engine.WarmSpec, out string) (*engine.Result, time.Duration, *vmSim) {
			sim := newVMSim(b, raw)
			req := sim.request(warm, out)
			if warm != nil {
				if _, err := e.WarmSync(ctx, req, nil); err != nil {
					b.Fatal(err)
				}
				sim.guestWrites(b, "warm-1", guestfsEnv)
				if _, err := e.WarmSync(ctx, req, nil); err != nil {
					b.Fatal(err)
				}
				sim.guestWrites(b, "warm-2", guestfsEnv)
				req.Source.VSphere.Warm.Cutover = true
			}
			start := time.Now()
			p, err := e.Plan(ctx, req, engine.PlanOptions{})
			if err == nil {
				var res *engine.Result
				if res, err = e.Apply(ctx, p, nil, engine.ApplyOptions{}); err == nil {
					return res, time.Since(start), sim
				}
			}
			b.Fatal(err)
			return nil, 0, nil
		}
		b.ResetTimer()
		cold, coldTime, _ := migrate(nil, filepath.Join(work, fmt.Sprintf("cold-%d", i)))
		warm, _, _ := migrate(&engine.WarmSpec{}, filepath.Join(work, fmt.Sprintf("warm-%d", i)))
		b.StopTimer()
		if !cold.BootTest.Passed() || !warm.BootTest.Passed() {
			b.Fatalf("boot tests: cold %s, warm %s", cold.BootTest.Status, warm.BootTest.Status)
		}
		w := warm.Warm
		down := time.Duration(w.DowntimeMS) * time.Millisecond
		b.ReportMetric(coldTime.Seconds(), "cold-s")
		b.ReportMetric(down.Seconds(), "warm-downtime-s")
		b.ReportMetric(down.Seconds()/coldTime.Seconds(), "downtime/cold")
		b.ReportMetric(float64(w.ShutdownMS)/1000, "shutdown-s")
		b.ReportMetric(float64(w.FinalSyncMS)/1000, "final-sync-s")
		rest := down
		for _, s := range warm.Stages {
			if s.Status == "ran" && s.Name != engine.StageFetch {
				b.ReportMetric(float64(s.DurationMS)/1000, string(s.Name)+"-s")
				rest -= time.Duration(s.DurationMS) * time.Millisecond
			}
		}
		rest -= time.Duration(w.ShutdownMS+w.FinalSyncMS) * time.Millisecond
		b.ReportMetric(rest.Seconds(), "other-s")
		b.Logf("cold %s; warm downtime %s (%.2f of cold): shutdown %dms, final sync %dms (%d bytes), stages %v, the rest (checks, publish) %s",
			coldTime.Round(time.Second), down.Round(time.Second), down.Seconds()/coldTime.Seconds(), w.ShutdownMS, w.FinalSyncMS,
			w.Syncs[len(w.Syncs)-1].ChangedBytes, stageTimes(warm.Stages), rest.Round(time.Millisecond))
		b.StartTimer()
	}
}

// vmSim is a simulated vCenter whose VM runs the fixture guest's disk.
type vmSim struct {
	s   *vcsimtest.Server
	cbt *vcsimtest.CBT
	key int32
}

func newVMSim(b *testing.B, raw string) *vmSim {
	s := vcsimtest.Start(b)
	cbt := s.EnableCBT()
	return &vmSim{s: s, cbt: cbt, key: cbt.FlatDiskFrom(b, s.VM("DC0_H0_VM0"), raw)}
}

func (v *vmSim) request(warm *engine.WarmSpec, out string) engine.Request {
	req := engine.Request{
		Source: engine.SourceSpec{VSphere: &engine.VSphereSpec{URL: v.s.URL, Datacenter: "DC0", VM: "DC0_H0_VM0", Snapshot: true,
			Thumbprint: v.s.Thumbprint, Username: vcsimtest.User, Password: vcsimtest.Password, Warm: warm}},
		Output: engine.OutputSpec{Dir: out},
	}
	req.Fixes.Enabled = true
	req.BootTest = engine.BootTestSpec{Enabled: true, Options: boottest.Options{DiskBus: "virtio", NICModel: "virtio", RequireNetwork: true, CPUs: 2}}
	return req
}

// guestWrites writes a 16 MiB file of random data into the running
// guest's file system, as the guest itself would (through libguestfs on
// the disk the VM writes now).
func (v *vmSim) guestWrites(b *testing.B, name string, env []string) {
	data := filepath.Join(b.TempDir(), name)
	buf := make([]byte, 16<<20)
	rand.Read(buf)
	if err := os.WriteFile(data, buf, 0o644); err != nil {
		b.Fatal(err)
	}
	live := v.cbt.LivePath(v.s.VM("DC0_H0_VM0"), v.key)
	cmd := exec.Command("guestfish", "--rw", "--format=raw", "-a", live, "-i", "upload", data, "/root/"+name)
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("guestfish: %v: %s", err, out)
	}
}

func stageTimes(st []engine.StageResult) string {
	s := ""
	for _, x := range st {
		if x.Status == "ran" {
			s += fmt.Sprintf(" %s=%s", x.Name, (time.Duration(x.DurationMS) * time.Millisecond).Round(100*time.Millisecond))
		}
	}
	return s
}
