package benchmarks

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
	tf, err := exec.LookPath(os.Getenv("TF_ACC_TERRAFORM_PATH"))
	if err != nil {
		b.Fatal("set TF_ACC_TERRAFORM_PATH to a Terraform-compatible CLI (make bench does)")
	}
	bin := filepath.Join(acctest.RepoRoot(), "bin")
	if _, err := os.Stat(filepath.Join(bin, "terraform-provider-vmconv")); err != nil {
		b.Fatal("run make build first (make bench does)")
	}
	fx := acctest.GuestFixtures(b)
	src := fx.Path(fx.Chain[0])
	root := filepath.Join(fixtureDir(b), "plan")
	os.RemoveAll(root)
	os.MkdirAll(root, 0o755)
	rc := filepath.Join(root, "terraformrc")
	os.WriteFile(rc, []byte(fmt.Sprintf("provider_installation {\n  dev_overrides {\n    \"vmconv/vmconv\" = %q\n  }\n  direct {}\n}\n", bin)), 0o644)

	for _, n := range []int{1, 10, 50} {
		dir := filepath.Join(root, fmt.Sprintf("n%d", n))
		os.MkdirAll(filepath.Join(dir, "out"), 0o755)
		var cfg strings.Builder
		cfg.WriteString("terraform {\n  required_providers {\n    vmconv = { source = \"vmconv/vmconv\" }\n  }\n}\n")
		for i := 0; i < n; i++ {
			fmt.Fprintf(&cfg, "resource \"vmconv_disk_conversion\" \"d%d\" {\n  source { path = %q }\n  output { path = %q }\n}\n",
				i, src, filepath.Join(dir, "out", fmt.Sprintf("d%d.qcow2", i)))
		}
		os.WriteFile(filepath.Join(dir, "main.tf"), []byte(cfg.String()), 0o644)
		plan := func(cache string) {
			cmd := exec.Command(tf, "-chdir="+dir, "plan", "-input=false", "-lock=false", "-no-color", "-refresh=false")
			cmd.Env = append(os.Environ(), "TF_CLI_CONFIG_FILE="+rc, "TF_IN_AUTOMATION=1", "VMCONV_CACHE_DIR="+cache,
				"VMCONV_WORK_DIR="+filepath.Join(root, "work"))
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("terraform plan: %v\n%s", err, out)
			} else if !strings.Contains(string(out), fmt.Sprintf("Plan: %d to add", n)) {
				b.Fatalf("terraform plan did not plan %d conversions:\n%s", n, out)
			}
		}
		b.Run(fmt.Sprintf("resources=%d/inspection=uncached", n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				plan(filepath.Join(root, fmt.Sprintf("cache-cold-%d-%d", n, i)))
			}
			b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/plan")
		})
		b.Run(fmt.Sprintf("resources=%d/inspection=cached", n), func(b *testing.B) {
			cache := filepath.Join(root, "cache-warm")
			plan(cache) // warm
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				plan(cache)
			}
			b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/plan")
		})
	}
}
