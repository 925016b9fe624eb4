// Command gen writes the seed corpora of the header parsers' fuzz targets:
// small real images made by qemu-img (and, for the ESX kinds qemu cannot
// create, by internal/testimg), encoded with fuzzimg. Run it from the
// repository root after changing what a target reads:
//
//	go run ./engine/internal/fuzzimg/gen
package main

import (
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/vmconv/terraform-provider-vmconv/engine/internal/fuzzimg"
	"github.com/vmconv/terraform-provider-vmconv/internal/testimg"
)

const mib = 1 << 20

// data is what every image holds: a few small runs, one at each end.
var data = testimg.Layer{{Offset: 0, Length: 512, Byte: 0x11}, {Offset: 1 * mib, Length: 4096, Byte: 0x22}, {Offset: 4*mib - 512, Length: 512, Byte: 0x33}}

type seed struct {
	target, name string
	make         func(dir string) (string, error)
}

func qemu(format, name string, opts string, then ...[]string) func(string) (string, error) {
	return func(dir string) (string, error) {
		p := filepath.Join(dir, name)
		args := []string{"create", "-q", "-f", format}
		if opts != "" {
			args = append(args, "-o", opts)
		}
		if err := testimg.Run("qemu-img", append(args, p, "4M")...); err != nil {
			return "", err
		}
		if err := testimg.QemuWrite(p, format, data); err != nil {
			return "", err
		}
		for _, c := range then {
			if err := testimg.Run(c[0], append(c[1:], p)...); err != nil {
				return "", err
			}
		}
		return p, nil
	}
}

func main() {
	root := filepath.Join("engine")
	raw := func(dir string) (string, error) {
		p := filepath.Join(dir, "disk.raw")
		return p, testimg.RawFile(p, 4*mib, append(testimg.Layer{{Offset: 510, Length: 1, Byte: 0x55}, {Offset: 511, Length: 1, Byte: 0xaa}}, data...))
	}
	compressed := func(dir string) (string, error) {
		src, err := qemu("qcow2", "src.qcow2", "")(dir)
		if err != nil {
			return "", err
		}
		p := filepath.Join(dir, "c.qcow2")
		return p, testimg.Run("qemu-img", "convert", "-q", "-c", "-O", "qcow2", "-o", "cluster_size=4096", src, p)
	}
	backed := func(dir string) (string, error) {
		if _, err := qemu("qcow2", "base.qcow2", "compat=0.10,cluster_size=4096")(dir); err != nil {
			return "", err
		}
		p := filepath.Join(dir, "top.qcow2")
		if err := testimg.Run("qemu-img", "create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", p); err != nil {
			return "", err
		}
		return p, testimg.QemuWrite(p, "qcow2", testimg.Layer{{Offset: 2 * mib, Length: 512, Byte: 0x44}})
	}
	stream := func(dir string) (string, error) {
		p := filepath.Join(dir, "stream.vmdk")
		return p, testimg.StreamOptimized(p, 4*mib, data)
	}
	qemuStream := func(dir string) (string, error) {
		r, err := raw(dir)
		if err != nil {
			return "", err
		}
		p := filepath.Join(dir, "qstream.vmdk")
		return p, testimg.Run("qemu-img", "convert", "-q", "-O", "vmdk", "-o", "subformat=streamOptimized", r, p)
	}
	split := func(dir string) (string, error) {
		if _, err := qemu("vmdk", "split.vmdk", "subformat=twoGbMaxExtentSparse")(dir); err != nil {
			return "", err
		}
		return filepath.Join(dir, "split-s001.vmdk"), nil
	}
	aligned := testimg.Layer{{Offset: 0, Length: 4096, Byte: 0x11}, {Offset: 3 * mib, Length: 8192, Byte: 0x22}}
	cowd := func(grain uint32) func(string) (string, error) {
		return func(dir string) (string, error) {
			_, err := testimg.VMFSSparse(dir, "snap", "base.vmdk", 2, 1, 4*mib, grain, aligned)
			return filepath.Join(dir, "snap-delta.vmdk"), err
		}
	}
	sesparse := func(dir string) (string, error) {
		_, err := testimg.SESparse(dir, "snap", "base.vmdk", 2, 1, 4*mib, aligned)
		return filepath.Join(dir, "snap-sesparse.vmdk"), err
	}
	qcow2s := []seed{
		{"FuzzQcow2", "qemu-v3-64k", qemu("qcow2", "a.qcow2", "")},
		{"FuzzQcow2", "qemu-v3-snapshot", qemu("qcow2", "s.qcow2", "cluster_size=4096", []string{"qemu-img", "snapshot", "-c", "s1"})},
		{"FuzzQcow2", "qemu-v2-backing", backed},
		{"FuzzQcow2", "qemu-compressed", compressed},
		{"FuzzQcow2", "qemu-extended-l2", qemu("qcow2", "x.qcow2", "extended_l2=on,cluster_size=128k")},
		{"FuzzQcow2", "qemu-512-refcount64", qemu("qcow2", "r.qcow2", "cluster_size=512,refcount_bits=64")},
	}
	seeds := append(qcow2s,
		seed{"FuzzVHD", "qemu-dynamic", qemu("vpc", "d.vhd", "")},
		seed{"FuzzVHD", "qemu-fixed", qemu("vpc", "f.vhd", "subformat=fixed")},
		seed{"FuzzVHD", "qemu-dynamic-force-size", qemu("vpc", "fs.vhd", "force_size=on")},
		seed{"FuzzVHDX", "qemu-dynamic", qemu("vhdx", "d.vhdx", "")},
		seed{"FuzzVHDX", "qemu-fixed", qemu("vhdx", "f.vhdx", "subformat=fixed,block_size=1M")},
		seed{"FuzzVDI", "qemu-dynamic", qemu("vdi", "d.vdi", "")},
		seed{"FuzzVDI", "qemu-static", qemu("vdi", "s.vdi", "static=on")},
		seed{"FuzzSparse", "qemu-monolithic", qemu("vmdk", "m.vmdk", "")},
		seed{"FuzzSparse", "qemu-monolithic-zeroed-grain", qemu("vmdk", "z.vmdk", "zeroed_grain=on")},
		seed{"FuzzSparse", "qemu-stream", qemuStream},
		seed{"FuzzSparse", "vmware-stream", stream},
		seed{"FuzzSparse", "qemu-split-extent", split},
		seed{"FuzzCOWD", "esx-grain1", cowd(1)},
		seed{"FuzzCOWD", "esx-grain8", cowd(8)},
		seed{"FuzzSESparse", "esx", sesparse},
		seed{"FuzzDetect", "raw-mbr", raw},
		seed{"FuzzDetect", "qcow2", qemu("qcow2", "a.qcow2", "")},
		seed{"FuzzDetect", "vhd-fixed", qemu("vpc", "f.vhd", "subformat=fixed")},
		seed{"FuzzDetect", "vhdx", qemu("vhdx", "d.vhdx", "")},
		seed{"FuzzDetect", "vdi", qemu("vdi", "d.vdi", "")},
		seed{"FuzzDetect", "vmdk-monolithic", qemu("vmdk", "m.vmdk", "")},
		seed{"FuzzDetect", "vmdk-descriptor", func(dir string) (string, error) {
			if _, err := qemu("vmdk", "flat.vmdk", "subformat=monolithicFlat")(dir); err != nil {
				return "", err
			}
			return filepath.Join(dir, "flat.vmdk"), nil
		}},
		seed{"FuzzDetect", "vmdk-cowd", cowd(1)},
		seed{"FuzzDetect", "vmdk-sesparse", sesparse},
	)
	for _, s := range seeds {
		dir, err := os.MkdirTemp("", "fuzzseed")
		if err != nil {
			log.Fatal(err)
		}
		p, err := s.make(dir)
		if err != nil {
			log.Fatalf("%s/%s: %v", s.target, s.name, err)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			log.Fatal(err)
		}
		os.RemoveAll(dir)
		pkg := "diskformat"
		switch s.target {
		case "FuzzSparse", "FuzzCOWD", "FuzzSESparse":
			pkg = "vmdk"
		}
		size, runs := fuzzimg.Encode(b)
		out := filepath.Join(root, pkg, "testdata", "fuzz", s.target, s.name)
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			log.Fatal(err)
		}
		if err := os.WriteFile(out, fuzzimg.Corpus(size, runs), 0o644); err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%-14s %-30s %9d bytes, %7d encoded\n", s.target, s.name, size, len(runs))
	}
}
