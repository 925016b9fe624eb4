package benchmarks

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/vmconv/terraform-provider-vmconv/engine"
	"github.com/vmconv/terraform-provider-vmconv/engine/accel"
	"github.com/vmconv/terraform-provider-vmconv/engine/boottest"
	"github.com/vmconv/terraform-provider-vmconv/engine/guest"
	"github.com/vmconv/terraform-provider-vmconv/internal/acctest"
)

// BenchmarkVirtV2V converts the plain fixture guest (a Debian 12 guest in
// the state VMware leaves it) with vmconv and with virt-v2v -i disk -o
// local -of qcow2, in the same run, and reports each tool's conversion time
// without a boot test. vmconv runs twice: planned without inspection (the
// apply inspects), and as terraform runs it by default (the plan inspects
// and dry-runs the fixes, and the apply takes that inspection). Then both outputs are booted the same way (vmconv's
// harness: virtio-blk disk, virtio NIC, serial marker) and the benchmark
// reports whether each reached multi-user with its network up.
func BenchmarkVirtV2V(b *testing.B) {
	if _, err := exec.LookPath("virt-v2v"); err != nil {
		b.Fatal("virt-v2v is required (tools/setup installs it with nbdkit and libnbd-bin)")
	}
	fx := acctest.GuestFixtures(b)
	src := fx.Path(fx.Variants["plain"].Disk)
	work := filepath.Join(fixtureDir(b), "v2v")
	os.RemoveAll(work)
	os.MkdirAll(work, 0o755)
	newEngine := func() *engine.Engine {
		// A cache of its own each time: a plan must inspect the guest, as
		// virt-v2v does, not find an earlier run's inspection.
		e, err := engine.New(engine.Config{WorkDir: filepath.Join(work, "scratch"), CacheDir: b.TempDir()})
		if err != nil {
			b.Fatal(err)
		}
		return e
	}
	a, err := newEngine().Accel(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e := newEngine()
		// vmconv: inspect, fix, convert; no boot test.
		vOut := filepath.Join(work, fmt.Sprintf("vmconv-%d.qcow2", i))
		req := engine.Request{Source: engine.SourceSpec{Path: src}, Output: engine.OutputSpec{Path: vOut}}
		req.Fixes.Enabled = true
		start := time.Now()
		p, err := e.Plan(context.Background(), req, engine.PlanOptions{})
		if err != nil {
			b.Fatal(err)
		}
		planTime := time.Since(start)
		res, err := e.Apply(context.Background(), p, nil, engine.ApplyOptions{})
		if err != nil {
			b.Fatal(err)
		}
		vTime := time.Since(start)
		b.ReportMetric(planTime.Seconds(), "vmconv-plan-s")
		logBreakdown(b, "vmconv", planTime, res)

		// vmconv as terraform runs it by default: the plan inspects the
		// guest and dry-runs the fixes (plan_inspection), and the apply
		// takes that inspection instead of making its own.
		e = newEngine()
		tOut := filepath.Join(work, fmt.Sprintf("vmconv-planned-%d.qcow2", i))
		treq := req
		treq.Output.Path = tOut
		start = time.Now()
		tp, err := e.Plan(context.Background(), treq, engine.PlanOptions{Inspect: true})
		if err != nil {
			b.Fatal(err)
		}
		tPlan := time.Since(start)
		start = time.Now()
		tres, err := e.Apply(context.Background(), tp, nil, engine.ApplyOptions{})
		if err != nil {
			b.Fatal(err)
		}
		tApply := time.Since(start)
		b.Logf("vmconv with plan-time inspection: plan %.1fs (%s), apply %.1fs", tPlan.Seconds(), tp.Guest.How, tApply.Seconds())
		logBreakdown(b, "vmconv, planned with inspection", tPlan, tres)

		// virt-v2v, under the same accelerator choice for its appliance.
		v2vDir := filepath.Join(work, fmt.Sprintf("v2v-%d", i))
		os.MkdirAll(v2vDir, 0o755)
		cmd := exec.Command("virt-v2v", "-i", "disk", src, "-o", "local", "-os", v2vDir, "-of", "qcow2", "-on", "web")
		cmd.Env = append(os.Environ(), "LIBGUESTFS_BACKEND=direct")
		cmd.Env = append(cmd.Env, accel.GuestfsEnv(a.Mode)...)
		start = time.Now()
		out, err := cmd.CombinedOutput()
		v2vTime := time.Since(start)
		if err != nil {
			b.Fatalf("virt-v2v: %v\n%s", err, tail(out))
		}
		v2vOut := filepath.Join(v2vDir, "web-sda")

		b.StopTimer()
		// Each output boots with the guest its own apply reports: the
		// planned one's is the inspection it took from the plan.
		boot := func(image, format, name string, g *guest.Info) *boottest.Result {
			r, err := e.BootTest(context.Background(), image, format, g,
				boottest.Options{DiskBus: "virtio", NICModel: "virtio", RequireNetwork: true, CPUs: 2},
				filepath.Join(work, name+".boot-test.log"))
			if err != nil {
				b.Fatalf("boot %s: %v", name, err)
			}
			return r
		}
		vBoot := boot(vOut, "qcow2", "vmconv", res.Guest)
		tBoot := boot(tOut, "qcow2", "vmconv-planned", tres.Guest)
		v2vBoot := boot(v2vOut, "qcow2", "virt-v2v", res.Guest)
		b.StartTimer()

		b.ReportMetric(vTime.Seconds(), "vmconv-convert-s")
		b.ReportMetric(v2vTime.Seconds(), "virtv2v-convert-s")
		b.ReportMetric(boolMetric(vBoot.Passed()), "vmconv-boots")
		b.ReportMetric(tPlan.Seconds(), "vmconv-inspecting-plan-s")
		b.ReportMetric(tApply.Seconds(), "vmconv-planned-apply-s")
		b.ReportMetric(boolMetric(tBoot.Passed()), "vmconv-planned-boots")
		b.ReportMetric(boolMetric(v2vBoot.Passed()), "virtv2v-boots")
		b.Logf("planned apply's boot %s (%s: %s)", tBoot.Status, tBoot.Reason, tBoot.Detail)
		b.Logf("accel %s; vmconv %.0fs, boot %s (%s: %s); virt-v2v %.0fs, boot %s (%s: %s)", a.Mode,
			vTime.Seconds(), vBoot.Status, vBoot.Reason, vBoot.Detail, v2vTime.Seconds(), v2vBoot.Status, v2vBoot.Reason, v2vBoot.Detail)
	}
}

// logBreakdown says where vmconv's time went: the plan, each stage of the
// apply, and the appliance's costliest calls.
func logBreakdown(b *testing.B, label string, plan time.Duration, res *engine.Result) {
	line := fmt.Sprintf("%s: plan %.1fs", label, plan.Seconds())
	for _, s := range res.Stages {
		if s.Status == "ran" {
			line += fmt.Sprintf(", %s %.1fs", s.Name, float64(s.DurationMS)/1000)
		}
	}
	b.Log(line)
	for _, c := range res.Appliance {
		if c.Seconds >= 0.5 {
			b.Logf("  appliance %-28s %3d calls %6.1fs", c.Name, c.Calls, c.Seconds)
		}
	}
}

func boolMetric(ok bool) float64 {
	if ok {
		return 1
	}
	return 0
}

func tail(b []byte) string {
	if len(b) > 3000 {
		return string(b[len(b)-3000:])
	}
	return string(b)
}
