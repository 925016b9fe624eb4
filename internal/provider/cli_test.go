package provider_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/vmconv/terraform-provider-vmconv/internal/acctest"
	"github.com/vmconv/terraform-provider-vmconv/internal/testimg"
)

// TestAccCLI_sourceChangedAfterSavedPlan drives the terraform CLI as a CI
// pipeline does: plan -out, then apply the saved plan. A write to the
// source in between must stop the apply with an explanation, and write
// nothing.
func TestAccCLI_sourceChangedAfterSavedPlan(t *testing.T) {
	head, outPath, cli := chainCLI(t)
	cli.Write(savedPlanConfig(head, outPath, ""))
	cli.MustRun("plan", "-input=false", "-out=tfplan")
	if err := testimg.QemuWrite(head, "vmdk", testimg.Layer{{Offset: 0, Length: 4096, Byte: 0x42}}); err != nil {
		t.Fatal(err)
	}
	got, err := cli.Run("apply", "-input=false", "-no-color", "tfplan")
	if err == nil {
		t.Fatalf("applying a stale plan succeeded:\n%s", got)
	}
	flat := strings.Join(strings.Fields(got), " ")
	if strings.Contains(flat, "Provider produced inconsistent final plan") || strings.Contains(flat, "bug in the provider") {
		t.Errorf("a changed source reads as a provider bug:\n%s", got)
	}
	for _, want := range []string{"Source Disk Changed After Plan", "Changed file: " + head, "Run terraform plan again"} {
		if !strings.Contains(flat, want) {
			t.Errorf("apply output lacks %q:\n%s", want, got)
		}
	}
	if _, err := os.Stat(outPath); err == nil {
		t.Fatal("a refused apply wrote the output")
	}
	// A fresh plan picks the change up and applies cleanly, and the
	// engine's stage events reach terraform's log through tflog.
	logPath := filepath.Join(t.TempDir(), "tf.log")
	cli.Env = append(cli.Env, "TF_LOG_PROVIDER=INFO", "TF_LOG_PATH="+logPath)
	cli.MustRun("apply", "-input=false", "-auto-approve")
	logText, _ := os.ReadFile(logPath)
	for _, want := range []string{`stage=flatten`, `stage=convert`, `event=stage_started`, `event=stage_skipped`, `output written`} {
		if !strings.Contains(string(logText), want) {
			t.Errorf("provider log lacks %q", want)
		}
	}
	// Progress at INFO, with sizes, rate and integer fields (Terraform
	// prints JSON numbers from providers as floats: 8.388608e+06).
	for _, re := range []string{`converting \(virtual size\): 8\.0 MiB of 8\.0 MiB \(100%\), [0-9.]+ [KMG]iB/s`, `total_bytes=8388608`, `rate_bytes_per_s=[0-9]+ `} {
		if !regexp.MustCompile(re).Match(logText) {
			t.Errorf("provider log has no progress matching %s", re)
		}
	}
	if m := regexp.MustCompile(`provider\.terraform-provider-vmconv.*[0-9]e\+[0-9]`).Find(logText); m != nil {
		t.Errorf("a number in the provider's log reads as a float: %s", m)
	}
	data, err := testimg.ReadQcow2(outPath)
	if err != nil {
		t.Fatal(err)
	}
	want := testimg.NewExpected(8*mib, baseLayer, snap1, snap2, testimg.Layer{{Offset: 0, Length: 4096, Byte: 0x42}})
	if err := want.Compare(data); err != nil {
		t.Fatal(err)
	}

	// A saved plan that updates the conversion in place (its timeouts)
	// goes stale the same way: the final plan would replace it instead.
	cli.Write(savedPlanConfig(head, outPath, `timeouts { create = "40m" }`))
	if got := cli.MustRun("plan", "-input=false", "-no-color", "-out=tfplan"); !strings.Contains(got, "updated in-place") {
		t.Fatalf("a new timeout does not plan an update in place:\n%s", got)
	}
	before, _ := os.Stat(outPath)
	if err := testimg.QemuWrite(head, "vmdk", testimg.Layer{{Offset: 8192, Length: 4096, Byte: 0x43}}); err != nil {
		t.Fatal(err)
	}
	got, err = cli.Run("apply", "-input=false", "-no-color", "tfplan")
	flat = strings.Join(strings.Fields(got), " ")
	if err == nil || strings.Contains(flat, "Provider produced inconsistent final plan") || strings.Contains(flat, "bug in the provider") {
		t.Fatalf("applying a stale update did not fail with vmconv's error (err %v):\n%s", err, got)
	}
	for _, want := range []string{"Source Disk Changed After Plan", "Changed file: " + head} {
		if !strings.Contains(flat, want) {
			t.Errorf("apply of a stale update lacks %q:\n%s", want, got)
		}
	}
	if after, _ := os.Stat(outPath); after == nil || !after.ModTime().Equal(before.ModTime()) {
		t.Error("a refused update touched the output")
	}
	// The next plan takes the change in: the output is replaced.
	if got := cli.MustRun("plan", "-input=false", "-no-color"); !strings.Contains(got, "must be replaced") || !strings.Contains(got, "Source Disk Changed") {
		t.Errorf("the plan after a refused stale update does not replace the output:\n%s", got)
	}
}

// chainCLI prepares a CLI test: the three-layer chain (its head), an
// output path in a folder of its own, and the terraform CLI with a cache
// of its own.
func chainCLI(t *testing.T) (head, outPath string, cli *acctest.CLI) {
	t.Helper()
	acctest.PreCheck(t)
	if os.Getenv("TF_ACC") == "" {
		t.Skip("TF_ACC not set")
	}
	head = chainIn(t, t.TempDir())[0]
	outPath = filepath.Join(t.TempDir(), "web.qcow2")
	return head, outPath, acctest.NewCLI(t, "VMCONV_CACHE_DIR="+t.TempDir())
}

// savedPlanConfig converts head to outPath, data plane only, with extra
// in the resource.
func savedPlanConfig(head, outPath, extra string) string {
	return fmt.Sprintf(`
terraform {
  required_providers {
    vmconv = { source = "vmconv/vmconv" }
  }
}
resource "vmconv_disk_conversion" "web" {
  source { path = %q }
  output { path = %q }
  fixes { enabled = false }
  boot_test { enabled = false }
  %s
}
`, head, outPath, extra)
}

// TestAccDiskConversion_applyPlansSourceOnce applies a saved plan with the
// terraform CLI and counts, in the engine's argv audit log, the qemu-img
// runs that only an engine plan makes of the source: measure (the size
// estimate) and check (one per layer of the chain). Terraform plans the
// resource again at apply, just before it creates it, and that plan is the
// only one: Create applies it instead of planning the source once more, and
// Apply's re-check of the source reads it without running either.
func TestAccDiskConversion_applyPlansSourceOnce(t *testing.T) {
	acctest.PreCheck(t)
	if os.Getenv("TF_ACC") == "" {
		t.Skip("TF_ACC not set")
	}
	src, out := t.TempDir(), t.TempDir()
	chain := chainIn(t, src)
	outPath := filepath.Join(out, "web.qcow2")
	argvLog := filepath.Join(t.TempDir(), "argv.log")
	cli := acctest.NewCLI(t, "VMCONV_CACHE_DIR="+t.TempDir(), "VMCONV_ARGV_LOG="+argvLog)
	cli.Write(savedPlanConfig(chain[0], outPath, ""))
	// runs counts the qemu-img runs of each subcommand since the last call.
	runs := func() map[string]int {
		t.Helper()
		b, err := os.ReadFile(argvLog)
		if err != nil {
			t.Fatal(err)
		}
		os.Remove(argvLog)
		n := map[string]int{}
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			var argv []string
			if err := json.Unmarshal([]byte(line), &argv); err != nil {
				t.Fatalf("argv log line %q: %v", line, err)
			}
			if len(argv) > 1 && filepath.Base(argv[0]) == "qemu-img" {
				n[argv[1]]++
			}
		}
		return n
	}
	cli.MustRun("plan", "-input=false", "-out=tfplan")
	if n := runs(); n["measure"] != 1 || n["check"] != len(chain) {
		t.Fatalf("terraform plan ran qemu-img %v; want measure once and check once per layer (%d)", n, len(chain))
	}
	cli.MustRun("apply", "-input=false", "tfplan")
	n := runs()
	if n["measure"] != 1 || n["check"] != len(chain) {
		t.Errorf("terraform apply planned the source more than once: qemu-img ran %v; want measure once and check once per layer (%d), from Terraform's plan at apply", n, len(chain))
	}
	if n["convert"] != 1 {
		t.Errorf("terraform apply ran qemu-img convert %d times, want 1", n["convert"])
	}
	data, err := testimg.ReadQcow2(outPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := testimg.NewExpected(8*mib, baseLayer, snap1, snap2).Compare(data); err != nil {
		t.Fatal(err)
	}
}
