package provider_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/vmconv/terraform-provider-vmconv/internal/acctest"
	"github.com/vmconv/terraform-provider-vmconv/internal/testimg"
)

func chainIn(t *testing.T, dir string) []string {
	t.Helper()
	p, err := testimg.VMDKChain(dir, "web", "monolithicSparse", 8*mib, baseLayer, snap1, snap2)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestAccDiskConversion_badInput drives every bad-input case through
// terraform and checks the diagnostic names the problem and the file, that
// nothing appears at the output path and that the source is untouched.
func TestAccDiskConversion_badInput(t *testing.T) {
	cases := []struct {
		name string
		// setup returns the source path and the output folder.
		setup func(t *testing.T, src, out string) (string, string)
		want  string // regexp over the diagnostic
	}{
		{"missing file", func(t *testing.T, src, out string) (string, string) {
			return filepath.Join(src, "nope-000002.vmdk"), out
		}, `(?s)Source Disk Not Found.*File: .*nope-000002\.vmdk`},
		{"unknown format", func(t *testing.T, src, out string) (string, string) {
			p := filepath.Join(src, "web.nvram")
			os.WriteFile(p, []byte("this is not a disk"), 0o644)
			return p, out
		}, `(?s)Unknown Disk Format.*File: .*web\.nvram.*source\.format`},
		{"truncated vmdk", func(t *testing.T, src, out string) (string, string) {
			p := chainIn(t, src)
			fi, _ := os.Stat(p[2])
			os.Truncate(p[2], fi.Size()/2)
			return p[0], out
		}, `(?s)Source Disk Is Truncated.*File: .*/web\.vmdk`},
		{"corrupt descriptor", func(t *testing.T, src, out string) (string, string) {
			p := filepath.Join(src, "web.vmdk")
			os.WriteFile(p, []byte("# Disk DescriptorFile\nversion=1\nCID=1\nparentCID=ffffffff\ncreateType=\"vmfs\"\nRW 16384 VMFS \"web-flat.vmdk\" 17 garbage\n"), 0o644)
			return p, out
		}, `(?s)VMDK Descriptor Is Invalid.*File: .*web\.vmdk.*line 6`},
		{"older snapshot named", func(t *testing.T, src, out string) (string, string) {
			p := chainIn(t, src)
			return p[1], out // web-000001.vmdk, while web-000002.vmdk is its snapshot
		}, `(?s)Source Is Not The Newest Snapshot.*web-000002\.vmdk.*allow_older_snapshot`},
		{"parent missing", func(t *testing.T, src, out string) (string, string) {
			p := chainIn(t, src)
			os.Remove(p[1])
			return p[0], out
		}, `(?s)Snapshot Chain Is Broken.*web-000001\.vmdk.*File: .*web-000002\.vmdk`},
		{"chain loops", func(t *testing.T, src, out string) (string, string) {
			testimg.VMFSSparse(src, "a", "b.vmdk", 1, 2, 8*mib, 1, snap1)
			p, _ := testimg.VMFSSparse(src, "b", "a.vmdk", 2, 1, 8*mib, 1, snap2)
			return p, out
		}, `(?s)Snapshot Chain Loops.*b\.vmdk -> a\.vmdk -> b\.vmdk`},
		{"extent outside the source folder", func(t *testing.T, src, out string) (string, string) {
			p := filepath.Join(src, "evil.vmdk")
			os.WriteFile(p, testimg.Descriptor(1, 0xffffffff, "vmfs", "", `RW 16 VMFS "../../../etc/shadow"`), 0o644)
			return p, out
		}, `(?s)Outside The Source Folder.*/etc/shadow.*File: .*evil\.vmdk`},
		{"snapshot CID mismatch", func(t *testing.T, src, out string) (string, string) {
			testimg.VMFSFlat(src, "db", 0xaaaa, 8*mib, baseLayer)
			p, _ := testimg.VMFSSparse(src, "db-000001", "db.vmdk", 2, 0xbbbb, 8*mib, 1, snap1)
			return p, out
		}, `(?s)Snapshot Does Not Match Its Parent.*allow_parent_cid_mismatch`},
		{"output folder missing", func(t *testing.T, src, out string) (string, string) {
			return chainIn(t, src)[0], filepath.Join(out, "no", "such")
		}, `(?s)Output Folder Does Not Exist.*no/such`},
		{"output is the source", func(t *testing.T, src, out string) (string, string) {
			return chainIn(t, src)[0], src // output path below becomes src/web.qcow2 -> see override
		}, `(?s)Output Path Would Overwrite The Source`},
		{"unmanaged output exists", func(t *testing.T, src, out string) (string, string) {
			os.WriteFile(filepath.Join(out, "web.qcow2"), []byte("precious"), 0o644)
			return chainIn(t, src)[0], out
		}, `(?s)Output File Already Exists.*overwrite`},
		{"not enough free space", func(t *testing.T, src, out string) (string, string) {
			if os.Geteuid() != 0 {
				t.Skip("mounting a tmpfs needs root; CI runs as root")
			}
			if err := syscall.Mount("tmpfs", out, "tmpfs", 0, "size=2m"); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { syscall.Unmount(out, 0) })
			return chainIn(t, src)[0], out
		}, `(?s)Not Enough Free Space For The Output.*Needed: \d+ bytes.*Free: \d+ bytes`},
		{"corrupt grain found mid-conversion", func(t *testing.T, src, out string) (string, string) {
			// Sound headers and tables: the plan passes, CONVERT fails.
			p := filepath.Join(src, "disk.vmdk")
			if err := testimg.StreamOptimized(p, 8*mib, testimg.Layer{{Offset: 0, Length: 8 * mib, Byte: 0x11}}); err != nil {
				t.Fatal(err)
			}
			if err := testimg.CorruptGrain(p, 3*mib+128<<10, testimg.DeflateData); err != nil {
				t.Fatal(err)
			}
			return p, out
		}, `(?s)Source Disk Is Corrupt.*cannot be read 3\.1 MiB \(39% of 8 MiB\).*File: .*/disk\.vmdk\s.*Stage: CONVERT.*Position: byte 3276800.*Command: qemu-img convert\s.*Error: error while reading at byte 3276800: Invalid argument`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src, out := t.TempDir(), t.TempDir()
			head, outDir := tc.setup(t, src, out)
			outPath := filepath.Join(outDir, "web.qcow2")
			if tc.name == "output is the source" {
				outPath = head
			}
			beforeOut, _ := acctest.DirSums(out)
			beforeSrc, _ := acctest.DirSums(src)
			resource.Test(t, resource.TestCase{
				PreCheck:                 func() { acctest.PreCheck(t) },
				ProtoV6ProviderFactories: acctest.ProviderFactories,
				Steps: []resource.TestStep{{
					Config:      conversionConfig(head, outPath, ""),
					ExpectError: wrapTolerant(tc.want),
				}},
			})
			if after, _ := acctest.DirSums(out); after != beforeOut {
				t.Errorf("the output folder changed:\n%s", after)
			}
			if after, _ := acctest.DirSums(src); after != beforeSrc {
				t.Errorf("the source changed")
			}
		})
	}
}

// TestAccDiskConversion_allowParentCIDMismatch converts the chain the
// default refuses once the user opts in, and warns.
func TestAccDiskConversion_allowParentCIDMismatch(t *testing.T) {
	src, out := t.TempDir(), t.TempDir()
	testimg.VMFSFlat(src, "db", 0xaaaa, 8*mib, baseLayer)
	p, _ := testimg.VMFSSparse(src, "db-000001", "db.vmdk", 2, 0xbbbb, 8*mib, 1, snap1)
	outPath := filepath.Join(out, "db.qcow2")
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { acctest.PreCheck(t) },
		ProtoV6ProviderFactories: acctest.ProviderFactories,
		Steps: []resource.TestStep{{
			Config: fmt.Sprintf(`
resource "vmconv_disk_conversion" "web" {
  source {
    path                      = %s
    allow_parent_cid_mismatch = true
  }
  output { path = %s }
%s}`, acctest.HCLString(p), acctest.HCLString(outPath), dataPlaneOnly),
			Check: func(s *terraform.State) error {
				data, err := testimg.ReadQcow2(outPath)
				if err != nil {
					return err
				}
				return testimg.NewExpected(8*mib, baseLayer, snap1).Compare(data)
			},
		}},
	})
}

// TestAccDiskConversion_twoResourcesOneOutput declares two conversions of
// one output path. The second must fail clearly and leave the first's
// output intact. The order is fixed with depends_on so the test is
// deterministic; concurrent writers are covered by the engine's lock test.
func TestAccDiskConversion_twoResourcesOneOutput(t *testing.T) {
	src, out := t.TempDir(), t.TempDir()
	head := chainIn(t, src)[0]
	outPath := filepath.Join(out, "web.qcow2")
	cfg := fmt.Sprintf(`
resource "vmconv_disk_conversion" "a" {
  source { path = %[1]s }
  output { path = %[2]s }
%[3]s}
resource "vmconv_disk_conversion" "b" {
  source { path = %[1]s }
  output { path = %[2]s }
  depends_on = [vmconv_disk_conversion.a]
%[3]s}`, acctest.HCLString(head), acctest.HCLString(outPath), dataPlaneOnly)
	checkIntact := func(*terraform.State) error {
		data, err := testimg.ReadQcow2(outPath)
		if err != nil {
			return err
		}
		return testimg.NewExpected(8*mib, baseLayer, snap1, snap2).Compare(data)
	}
	// The first one is kept in the second step.
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { acctest.PreCheck(t) },
		ProtoV6ProviderFactories: acctest.ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config:      cfg,
				ExpectError: wrapTolerant(`(?s)Output File Already Exists.*with vmconv_disk_conversion\.b`),
			},
			{
				Config: cfg[:strings.Index(cfg, `resource "vmconv_disk_conversion" "b"`)],
				Check:  checkIntact,
			},
		},
	})
}

// TestAccDiskConversion_allowOlderSnapshot: with allow_older_snapshot the
// layer is converted as it was when its snapshot was taken, without the
// snapshot's writes, as asked.
func TestAccDiskConversion_allowOlderSnapshot(t *testing.T) {
	t.Parallel()
	src, out := t.TempDir(), filepath.Join(t.TempDir(), "web.qcow2")
	p := chainIn(t, src)
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { acctest.PreCheck(t) },
		ProtoV6ProviderFactories: acctest.ProviderFactories,
		Steps: []resource.TestStep{{
			Config: fmt.Sprintf(`
resource "vmconv_disk_conversion" "web" {
  source {
    path                 = %s
    allow_older_snapshot = true
  }
  output { path = %s }
%s}
`, acctest.HCLString(p[1]), acctest.HCLString(out), dataPlaneOnly),
			Check: resource.ComposeAggregateTestCheckFunc(
				resource.TestCheckResourceAttr("vmconv_disk_conversion.web", "chain.#", "2"),
				checkOutput(out, testimg.NewExpected(8*mib, baseLayer, snap1)),
			),
		}},
	})
}

// TestAccTimeouts_validatedAtPlan: a timeout that parses but is not
// positive fails the plan on its attribute, for every resource, instead of
// reading at apply as a cancelled conversion.
func TestAccTimeouts_validatedAtPlan(t *testing.T) {
	for _, c := range []struct{ resource, body string }{
		{"vmconv_disk_conversion", `source { path = "/nonexistent/web.vmdk" }
  output { path = "/nonexistent/web.qcow2" }`},
		{"vmconv_vm_conversion", `source { vmx = "/nonexistent/web.vmx" }
  output { dir = "/nonexistent/web" }`},
		{"vmconv_kvm_domain", `name = "web"
  disks { path = "/nonexistent/web.qcow2" }`},
	} {
		for _, bad := range []string{`create = "-5m"`, `delete = "0s"`} {
			resource.UnitTest(t, resource.TestCase{
				ProtoV6ProviderFactories: acctest.ProviderFactories,
				Steps: []resource.TestStep{{
					Config:      fmt.Sprintf("resource %q \"x\" {\n  %s\n  timeouts { %s }\n}\n", c.resource, c.body, bad),
					PlanOnly:    true,
					ExpectError: regexpMust(`(?s)Invalid Timeout.*is not a positive duration`),
				}},
			})
		}
	}
}
