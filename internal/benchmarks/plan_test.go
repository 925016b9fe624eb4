package benchmarks

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/vmconv/terraform-provider-vmconv/internal/acctest"
)

// BenchmarkPlan times `terraform plan` of 1, 10 and 50 conversions of the
// fixture guest (the snapshot chain, fixes on), through the terraform CLI
// and the provider binary `make build` made. "cached" plans with every
// inspection in the cache; "uncached" starts from an empty cache, so the
// plan launches the appliance (once: concurrent plans of one source share
// the inspection).
func BenchmarkPlan(b *testing.B) {
	fx := acctest.GuestFixtures(b)
	src := fx.Path(fx.Chain[0])
	pe := newPlanEnv(b, "plan")
	for _, n := range []int{1, 10, 50} {
		srcs := make([]string, n)
		for i := range srcs {
			srcs[i] = src
		}
		dir := pe.config(fmt.Sprintf("n%d", n), srcs)
		b.Run(fmt.Sprintf("resources=%d/inspection=uncached", n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				pe.plan(dir, n, filepath.Join(pe.root, fmt.Sprintf("cache-cold-%d-%d", n, i)))
			}
			b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/plan")
		})
		b.Run(fmt.Sprintf("resources=%d/inspection=cached", n), func(b *testing.B) {
			cache := filepath.Join(pe.root, "cache-warm")
			pe.plan(dir, n, cache) // warm
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				pe.plan(dir, n, cache)
			}
			b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/plan")
		})
	}
}

// BenchmarkPlanGuests times an uncached `terraform plan` of 1 and of 20
// different guests: copies of the fixture variants (plain, lvm, networkd,
// dracut, uefi, serial, in turn), each its own file, so no two
// conversions share an inspection and the plan inspects every guest. The
// ratio of the two is what issue 16's "20 guests at most 3x one" asks
// about. The provider's max_parallel_conversions bounds how many
// appliances run at once: the N guests are planned with one at a time and
// again with one per CPU.
func BenchmarkPlanGuests(b *testing.B) {
	fx := acctest.GuestFixtures(b)
	var variants []string
	for name := range fx.Variants {
		variants = append(variants, name)
	}
	sort.Strings(variants)
	pe := newPlanEnv(b, "plan-guests")
	// VMCONV_BENCH_GUESTS plans fewer (or more) than 20, for a quicker
	// look at how the cost grows.
	most := 20
	if n, err := strconv.Atoi(os.Getenv("VMCONV_BENCH_GUESTS")); err == nil && n > 0 {
		most = n
	}
	srcDir := filepath.Join(pe.root, "src")
	os.MkdirAll(srcDir, 0o755)
	var srcs []string
	for i := 0; i < most; i++ {
		v := variants[i%len(variants)]
		dst := filepath.Join(srcDir, fmt.Sprintf("g%02d-%s.vmdk", i, v))
		if out, err := exec.Command("cp", "--sparse=always", fx.Path(fx.Variants[v].Disk), dst).CombinedOutput(); err != nil {
			b.Fatalf("cp: %v: %s", err, out)
		}
		srcs = append(srcs, dst)
	}
	// One appliance at a time, then one per CPU: what parallel appliances
	// buy, measured in the same run.
	runs := []struct{ n, parallel int }{{1, 1}, {most, 1}}
	if cpus := runtime.NumCPU(); cpus > 1 {
		runs = append(runs, struct{ n, parallel int }{most, cpus})
	}
	for _, r := range runs {
		dir := pe.config(fmt.Sprintf("n%d-p%d", r.n, r.parallel), srcs[:r.n])
		b.Run(fmt.Sprintf("guests=%d/parallel=%d/inspection=uncached", r.n, r.parallel), func(b *testing.B) {
			pe.env = []string{fmt.Sprintf("VMCONV_MAX_PARALLEL_CONVERSIONS=%d", r.parallel)}
			defer func() { pe.env = nil }()
			for i := 0; i < b.N; i++ {
				pe.plan(dir, r.n, filepath.Join(pe.root, fmt.Sprintf("cache-cold-%d-%d-%d", r.n, r.parallel, i)))
			}
			b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/plan")
		})
	}
}

// planEnv runs `terraform plan` with the provider binary `make build`
// made, in folders under the benchmark directory.
type planEnv struct {
	b            *testing.B
	tf, rc, root string
	// env is added to the provider's environment.
	env []string
}

func newPlanEnv(b *testing.B, name string) *planEnv {
	tf, err := exec.LookPath(os.Getenv("TF_ACC_TERRAFORM_PATH"))
	if err != nil {
		b.Fatal("set TF_ACC_TERRAFORM_PATH to a Terraform-compatible CLI (make bench does)")
	}
	bin := filepath.Join(acctest.RepoRoot(), "bin")
	if _, err := os.Stat(filepath.Join(bin, "terraform-provider-vmconv")); err != nil {
		b.Fatal("run make build first (make bench does)")
	}
	root := filepath.Join(fixtureDir(b), name)
	os.RemoveAll(root)
	os.MkdirAll(root, 0o755)
	rc := filepath.Join(root, "terraformrc")
	os.WriteFile(rc, []byte(fmt.Sprintf("provider_installation {\n  dev_overrides {\n    \"vmconv/vmconv\" = %q\n  }\n  direct {}\n}\n", bin)), 0o644)
	return &planEnv{b: b, tf: tf, rc: rc, root: root}
}

// config writes a configuration converting each of srcs (fixes on, the
// default) into folder name, and returns the folder.
func (pe *planEnv) config(name string, srcs []string) string {
	dir := filepath.Join(pe.root, name)
	os.MkdirAll(filepath.Join(dir, "out"), 0o755)
	var cfg strings.Builder
	cfg.WriteString("terraform {\n  required_providers {\n    vmconv = { source = \"vmconv/vmconv\" }\n  }\n}\n")
	for i, src := range srcs {
		fmt.Fprintf(&cfg, "resource \"vmconv_disk_conversion\" \"d%d\" {\n  source { path = %q }\n  output { path = %q }\n}\n",
			i, src, filepath.Join(dir, "out", fmt.Sprintf("d%d.qcow2", i)))
	}
	os.WriteFile(filepath.Join(dir, "main.tf"), []byte(cfg.String()), 0o644)
	return dir
}

// plan runs terraform plan in dir with cache as the provider's cache, and
// fails unless it plans n conversions.
func (pe *planEnv) plan(dir string, n int, cache string) {
	cmd := exec.Command(pe.tf, "-chdir="+dir, "plan", "-input=false", "-lock=false", "-no-color", "-refresh=false")
	cmd.Env = append(os.Environ(), "TF_CLI_CONFIG_FILE="+pe.rc, "TF_IN_AUTOMATION=1", "VMCONV_CACHE_DIR="+cache,
		"VMCONV_WORK_DIR="+filepath.Join(pe.root, "work"))
	cmd.Env = append(cmd.Env, pe.env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		pe.b.Fatalf("terraform plan: %v\n%s", err, out)
	} else if !strings.Contains(string(out), fmt.Sprintf("Plan: %d to add", n)) {
		pe.b.Fatalf("terraform plan did not plan %d conversions:\n%s", n, out)
	}
}
