package provider_test

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/vmconv/terraform-provider-vmconv/engine/diskformat"
	"github.com/vmconv/terraform-provider-vmconv/internal/acctest"
	"github.com/vmconv/terraform-provider-vmconv/internal/testimg"
)

type formatCase struct {
	head     string
	declared string // source.format, when the content cannot say
	format   string // expected source_format
	layers   int
	want     *testimg.Expected
}

// buildFormats writes one source per supported input kind into dir. Each
// chain layer carries its own pattern, so a missing layer shows in the bytes.
func buildFormats(t *testing.T, dir string) map[string]formatCase {
	t.Helper()
	const size = 8 * mib
	all := testimg.NewExpected(size, baseLayer, snap1, snap2)
	cases := map[string]formatCase{}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, sub := range []string{"monolithicSparse", "twoGbMaxExtentSparse", "monolithicFlat", "streamOptimized"} {
		d := filepath.Join(dir, sub)
		must(os.Mkdir(d, 0o755))
		p, err := testimg.VMDKChain(d, "web", sub, size, baseLayer, snap1, snap2)
		must(err)
		cases[strings.ToLower(sub)] = formatCase{head: p[0], format: "vmdk", layers: 3, want: all}
	}
	d := filepath.Join(dir, "vmfssparse")
	must(os.Mkdir(d, 0o755))
	_, err := testimg.VMFSFlat(d, "db", 0x11, size, baseLayer)
	must(err)
	_, err = testimg.VMFSSparse(d, "db-000001", "db.vmdk", 0x22, 0x11, size, 1, snap1)
	must(err)
	p, err := testimg.VMFSSparse(d, "db-000002", "db-000001.vmdk", 0x33, 0x22, size, 1, snap2)
	must(err)
	cases["vmfssparse"] = formatCase{head: p, format: "vmdk", layers: 3, want: all}

	d = filepath.Join(dir, "sesparse")
	must(os.Mkdir(d, 0o755))
	_, err = testimg.VMFSFlat(d, "db", 0x11, size, baseLayer)
	must(err)
	_, err = testimg.SESparse(d, "db-000001", "db.vmdk", 0x22, 0x11, size, snap1)
	must(err)
	p, err = testimg.SESparse(d, "db-000002", "db-000001.vmdk", 0x33, 0x22, size, snap2)
	must(err)
	cases["sesparse"] = formatCase{head: p, format: "vmdk", layers: 3, want: all}

	p = filepath.Join(dir, "ova-disk.vmdk")
	must(testimg.StreamOptimized(p, size, testimg.Merge(baseLayer, snap1, snap2)))
	cases["vmware_stream"] = formatCase{head: p, format: "vmdk", layers: 1, want: all}

	raw := filepath.Join(dir, "content.raw")
	must(testimg.RawFile(raw, size, testimg.Merge(baseLayer, snap1, snap2)))
	for _, f := range []struct{ name, driver, opts string }{
		{"qcow2", "qcow2", ""}, {"vhd", "vpc", "subformat=dynamic"}, {"vhdx", "vhdx", ""}, {"vdi", "vdi", ""},
	} {
		p := filepath.Join(dir, "disk-"+f.name+".img") // the name says nothing
		args := []string{"convert", "-q", "-f", "raw", "-O", f.driver}
		if f.opts != "" {
			args = append(args, "-o", f.opts)
		}
		must(testimg.Run("qemu-img", append(args, raw, p)...))
		want := all
		if f.name == "vhd" {
			// VHD sizes round up to a CHS geometry; the tail reads as zeros.
			fh, err := os.Open(p)
			must(err)
			fi, _ := fh.Stat()
			info, err := diskformat.Inspect(diskformat.VHD, fh, fi.Size())
			fh.Close()
			must(err)
			want = testimg.NewExpected(info.VirtualSize, baseLayer, snap1, snap2)
		}
		cases[f.name] = formatCase{head: p, format: f.name, layers: 1, want: want}
	}
	cases["raw"] = formatCase{head: raw, declared: "raw", format: "raw", layers: 1, want: all}
	return cases
}

func TestAccDiskConversion_everyInputFormat(t *testing.T) {
	srcDir, outDir := t.TempDir(), t.TempDir()
	cases := buildFormats(t, srcDir)
	names := make([]string, 0, len(cases))
	for n := range cases {
		names = append(names, n)
	}
	sort.Strings(names)
	var cfg strings.Builder
	var checks []statecheck.StateCheck
	var fns []resource.TestCheckFunc
	for _, n := range names {
		c := cases[n]
		out := filepath.Join(outDir, n+".raw")
		declared := ""
		if c.declared != "" {
			declared = fmt.Sprintf("format = %q", c.declared)
		}
		fmt.Fprintf(&cfg, `
resource "vmconv_disk_conversion" %q {
  source {
    path = %s
    %s
  }
  output {
    path   = %s
    format = "raw"
  }
%s}
`, n, acctest.HCLString(c.head), declared, acctest.HCLString(out), dataPlaneOnly)
		addr := "vmconv_disk_conversion." + n
		checks = append(checks,
			statecheck.ExpectKnownValue(addr, tfjsonpath.New("source_format"), knownvalue.StringExact(c.format)),
			statecheck.ExpectKnownValue(addr, tfjsonpath.New("chain"), knownvalue.ListSizeExact(c.layers)),
			statecheck.ExpectKnownValue(addr, tfjsonpath.New("output_size"), knownvalue.Int64Exact(c.want.Size)),
		)
		fns = append(fns, func(n string, want *testimg.Expected) resource.TestCheckFunc {
			return func(*terraform.State) error {
				data, err := os.ReadFile(out)
				if err != nil {
					return err
				}
				if err := want.Compare(data); err != nil {
					return fmt.Errorf("%s: %w", n, err)
				}
				return nil
			}
		}(n, c.want))
	}
	before, err := acctest.DirSums(srcDir)
	if err != nil {
		t.Fatal(err)
	}
	fns = append(fns, checkSourceUntouched(srcDir, &before))
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { acctest.PreCheck(t) },
		ProtoV6ProviderFactories: acctest.ProviderFactories,
		Steps: []resource.TestStep{{
			Config:            cfg.String(),
			ConfigStateChecks: checks,
			Check:             resource.ComposeAggregateTestCheckFunc(fns...),
		}},
	})
}
