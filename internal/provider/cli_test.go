package provider_test

import (
	"fmt"
	"os"
	"path/filepath"
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
	acctest.PreCheck(t)
	if os.Getenv("TF_ACC") == "" {
		t.Skip("TF_ACC not set")
	}
	src, out := t.TempDir(), t.TempDir()
	head := chainIn(t, src)[0]
	outPath := filepath.Join(out, "web.qcow2")
	cli := acctest.NewCLI(t, "VMCONV_CACHE_DIR="+t.TempDir())
	cli.Write(fmt.Sprintf(`
terraform {
  required_providers {
    vmconv = { source = "vmconv/vmconv" }
  }
}
resource "vmconv_disk_conversion" "web" {
  source = { path = %q }
  output = { path = %q }
  fixes     = { enabled = false }
  boot_test = { enabled = false }
}
`, head, outPath))
	cli.MustRun("plan", "-input=false", "-out=tfplan")
	if err := testimg.QemuWrite(head, "vmdk", testimg.Layer{{Offset: 0, Length: 4096, Byte: 0x42}}); err != nil {
		t.Fatal(err)
	}
	got, err := cli.Run("apply", "-input=false", "-no-color", "tfplan")
	if err == nil {
		t.Fatalf("applying a stale plan succeeded:\n%s", got)
	}
	flat := strings.Join(strings.Fields(got), " ")
	for _, want := range []string{"Source Disk Changed Since It Was Last Planned", "Previous fingerprint:", "Run terraform plan again"} {
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
	data, err := testimg.ReadQcow2(outPath)
	if err != nil {
		t.Fatal(err)
	}
	want := testimg.NewExpected(8*mib, baseLayer, snap1, snap2, testimg.Layer{{Offset: 0, Length: 4096, Byte: 0x42}})
	if err := want.Compare(data); err != nil {
		t.Fatal(err)
	}
}
