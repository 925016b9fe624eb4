package provider_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmconv/terraform-provider-vmconv/internal/acctest"
)

// TestAccDiskConversion_outputNoStateRecords is the state a kill -9 after
// the publish leaves, reached without a kill: an output and its report that
// no Terraform state records (the workspace that made it is gone). The very
// same conversion adopts it; a different one is refused with a hint that
// works (import); a file without a report is refused without offering it.
func TestAccDiskConversion_outputNoStateRecords(t *testing.T) {
	acctest.PreCheck(t)
	if os.Getenv("TF_ACC") == "" {
		t.Skip("TF_ACC not set")
	}
	src, out := t.TempDir(), t.TempDir()
	head := chainIn(t, src)[0]
	outPath := filepath.Join(out, "web.qcow2")
	config := func(path string, compression bool) string {
		return fmt.Sprintf(`
terraform {
  required_providers {
    vmconv = { source = "vmconv/vmconv" }
  }
}
resource "vmconv_disk_conversion" "web" {
  source { path = %q }
  output {
    path        = %q
    compression = %v
  }
  fixes { enabled = false }
  boot_test { enabled = false }
}
`, head, path, compression)
	}
	workspace := func(t *testing.T, cfg string) *acctest.CLI {
		cli := acctest.NewCLI(t, "VMCONV_CACHE_DIR="+t.TempDir())
		cli.Write(cfg)
		return cli
	}
	flat := func(s string) string { return strings.Join(strings.Fields(s), " ") }

	workspace(t, config(outPath, false)).MustRun("apply", "-auto-approve", "-input=false", "-no-color")
	before, err := os.Stat(outPath)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("a different conversion is refused, and import works", func(t *testing.T) {
		cli := workspace(t, config(outPath, true))
		got, err := cli.Run("apply", "-auto-approve", "-input=false", "-no-color")
		if err == nil {
			t.Fatalf("a conversion with other settings took the output over:\n%s", got)
		}
		for _, want := range []string{"Output File Already Exists", "different output format or compression", "terraform import"} {
			if !strings.Contains(flat(got), want) {
				t.Errorf("refusal lacks %q:\n%s", want, got)
			}
		}
		cli.MustRun("import", "-input=false", "-no-color", "vmconv_disk_conversion.web", outPath)
	})

	t.Run("the very same conversion adopts it", func(t *testing.T) {
		cli := workspace(t, config(outPath, false))
		got := cli.MustRun("apply", "-auto-approve", "-input=false", "-no-color")
		if !strings.Contains(got, "Output Of An Interrupted Apply Adopted") {
			t.Errorf("no adoption warning:\n%s", got)
		}
		if after, err := os.Stat(outPath); err != nil || !after.ModTime().Equal(before.ModTime()) {
			t.Errorf("the output was written again (mtime %v, was %v)", after.ModTime(), before.ModTime())
		}
		if plan, err := cli.Run("plan", "-detailed-exitcode", "-input=false", "-no-color"); err != nil {
			t.Errorf("the plan after the adoption is not empty (%v):\n%s", err, plan)
		}
	})

	t.Run("a file without a report is not offered for import", func(t *testing.T) {
		other := filepath.Join(out, "other.qcow2")
		if err := os.WriteFile(other, []byte("someone's file"), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := workspace(t, config(other, false)).Run("apply", "-auto-approve", "-input=false", "-no-color")
		if err == nil || !strings.Contains(got, "Output File Already Exists") {
			t.Fatalf("want a refusal, got %v:\n%s", err, got)
		}
		if strings.Contains(got, "terraform import") || !strings.Contains(flat(got), "cannot be imported") {
			t.Errorf("the hint offers an import that cannot work:\n%s", got)
		}
	})
}
