package provider_test

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vmconv/terraform-provider-vmconv/engine"
	"github.com/vmconv/terraform-provider-vmconv/internal/acctest"
	"github.com/vmconv/terraform-provider-vmconv/internal/testimg"
)

// TestAccDiskConversion_killedApplyConverges SIGKILLs terraform, or the
// provider alone, at three moments of an apply of a disk with a few hundred
// MiB of allocated data: mid-convert, after the report is written but
// before the output is renamed into place, and after the rename but before
// Terraform records the state. The two last are held by the engine's test
// seam (VMCONV_TEST_HOLD), a window of microseconds otherwise. After each
// kill: no qemu-img or provider is left running, nothing partial is at the
// output path, and a plain re-apply converges (exit 0, then an empty plan,
// an output equal to the source) with nothing but the output and its report
// left in the output folder and nothing in the work folder. An output
// published before the kill is adopted, not converted again.
func TestAccDiskConversion_killedApplyConverges(t *testing.T) {
	acctest.PreCheck(t)
	if os.Getenv("TF_ACC") == "" {
		t.Skip("TF_ACC not set")
	}
	head := allocatedSource(t, t.TempDir(), 256*mib)
	for _, victim := range []string{"terraform", "provider"} {
		for _, point := range []string{"mid-convert", "before-publish-rename", "after-publish-rename"} {
			t.Run(victim+"/"+point, func(t *testing.T) {
				start := time.Now()
				out, work := t.TempDir(), t.TempDir()
				outPath := filepath.Join(out, "big.qcow2")
				cli := acctest.NewCLI(t, "VMCONV_CACHE_DIR="+t.TempDir(), "VMCONV_WORK_DIR="+work)
				cli.Write(fmt.Sprintf(`
terraform {
  required_providers {
    vmconv = { source = "vmconv/vmconv" }
  }
}
resource "vmconv_disk_conversion" "big" {
  source { path = %q }
  output { path = %q }
  fixes { enabled = false }
  boot_test { enabled = false }
}
`, head, outPath))
				env := cli.Env
				cli.Env = append(slices.Clip(env), engine.TestHoldEnv+"="+point)
				run := cli.Start("apply", "-auto-approve", "-input=false", "-no-color")
				cli.Env = env

				reached := func() bool {
					switch point {
					case "mid-convert":
						return tempBiggerThan(out, 32*mib)
					case "before-publish-rename":
						return exists(outPath + ".vmconv.json")
					default:
						return exists(outPath)
					}
				}
				for deadline := time.Now().Add(2 * time.Minute); !reached(); time.Sleep(10 * time.Millisecond) {
					if run.Exited() || time.Now().After(deadline) {
						t.Fatalf("the apply never reached %s:\n%s", point, run.Output())
					}
				}
				t.Logf("%s: reached %s", time.Since(start).Round(100*time.Millisecond), point)
				tree := acctest.Descendants(run.Cmd.Process.Pid)
				provider := -1
				for _, p := range tree {
					if strings.HasPrefix(p.Comm, "terraform-provi") {
						provider = p.Pid
					}
				}
				if provider < 0 {
					t.Fatalf("no provider process under terraform: %+v", tree)
				}
				killed := time.Now()
				if victim == "terraform" {
					acctest.Kill(t, run.Cmd.Process.Pid)
				} else {
					acctest.Kill(t, provider)
				}
				run.Wait()
				// Whatever the victim, the whole tree dies with it, and
				// soon: qemu-img by its parent-death signal, the provider
				// when terraform's end cancels its request.
				for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
					left := acctest.Mentioning(out)
					for _, p := range tree {
						if alive(p.Pid) {
							left = append(left, p)
						}
					}
					if len(left) == 0 {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("still running %s after the kill: %+v", time.Since(killed).Round(time.Millisecond), left)
					}
				}
				t.Logf("%s: the tree is gone", time.Since(start).Round(100*time.Millisecond))
				// Nothing partial at the output path: no file, or a complete
				// one with its report.
				if exists(outPath) {
					rep, err := engine.ReadReport(outPath)
					if err != nil {
						t.Fatalf("an output without its report after the kill: %v", err)
					}
					if got := sha256Of(t, outPath); got != rep.Result.Output.SHA256 {
						t.Fatalf("the output at the path is not the one its report describes (sha256 %s, report %s)", got, rep.Result.Output.SHA256)
					}
				}

				// The re-apply converges, with no manual step.
				got := cli.MustRun("apply", "-auto-approve", "-input=false", "-no-color")
				adopted := strings.Contains(got, "Output Of An Interrupted Apply Adopted")
				t.Logf("%s: re-applied", time.Since(start).Round(100*time.Millisecond))
				if point == "after-publish-rename" && !adopted {
					t.Errorf("the output published before the kill was converted again, not adopted:\n%s", got)
				}
				if _, err := cli.Run("plan", "-detailed-exitcode", "-input=false", "-no-color"); err != nil {
					plan, _ := cli.Run("plan", "-input=false", "-no-color")
					t.Fatalf("the plan after the re-apply is not empty (%v):\n%s", err, plan)
				}
				if err := exec.Command("qemu-img", "compare", "-q", "-f", "vmdk", "-F", "qcow2", head, outPath).Run(); err != nil {
					t.Fatalf("the output differs from the source: %v", err)
				}
				res := cli.StateResources()
				if len(res) != 1 {
					t.Fatalf("terraform show: %d resources in state", len(res))
				}
				if sum := res[0]["output_sha256"]; sum != sha256Of(t, outPath) {
					t.Errorf("state's output_sha256 %v is not the output's", sum)
				}
				var left []string
				entries, _ := os.ReadDir(out)
				for _, e := range entries {
					if e.Name() != "big.qcow2" && e.Name() != "big.qcow2.vmconv.json" && e.Name() != "big.qcow2.vmconv.md" {
						left = append(left, e.Name())
					}
				}
				if len(left) > 0 {
					t.Errorf("left in the output folder after the re-apply: %q", left)
				}
				// The killed run's scratch folder (its overlay, shadow
				// descriptors) ran no defers; the re-apply swept it.
				if scratch, _ := os.ReadDir(work); len(scratch) > 0 {
					t.Errorf("left in the work folder after the re-apply: %v", scratch)
				}
				t.Logf("%s: done (adopted: %v)", time.Since(start).Round(100*time.Millisecond), adopted)
			})
		}
	}
}

// allocatedSource writes a VMDK whose every block holds data, so that
// converting it moves all of size.
func allocatedSource(t *testing.T, dir string, size int64) string {
	t.Helper()
	raw := filepath.Join(dir, "big.raw")
	f, err := os.Create(raw)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4*mib)
	for off := int64(0); off < size; off += int64(len(buf)) {
		for i := 0; i < len(buf); i += 4096 {
			copy(buf[i:], fmt.Sprintf("block %d of a disk a kill test converts", off+int64(i)))
			buf[i+4095] = byte(off/mib + int64(i))
		}
		if _, err := f.WriteAt(buf, off); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	img := filepath.Join(dir, "big.vmdk")
	if err := testimg.Run("qemu-img", "convert", "-f", "raw", "-O", "vmdk", raw, img); err != nil {
		t.Fatal(err)
	}
	os.Remove(raw)
	return img
}

func tempBiggerThan(dir string, n int64) bool {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".vmconv-tmp-") {
			if fi, err := e.Info(); err == nil && fi.Size() > n {
				return true
			}
		}
	}
	return false
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return !errors.Is(err, os.ErrNotExist)
}

func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z' // a zombie has exited
}

func sha256Of(t *testing.T, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	io.Copy(h, f)
	return hex.EncodeToString(h.Sum(nil))
}
