// Package testimg builds disk images with known content for tests and the
// demo. Hosted VMDK kinds, qcow2, VHD, VHDX and VDI are made with qemu-img
// and qemu-io; the ESX datastore kinds qemu cannot create (VMFS flat,
// vmfsSparse and seSparse snapshots) are written here. Whoever makes an
// image, tests judge the converted output by reading its bytes in Go.
package testimg

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
)

// Write is one run of identical bytes written into a layer.
type Write struct {
	Offset int64
	Length int64
	Byte   byte
}

// Layer lists what one snapshot layer writes, base first in a Chain.
type Layer []Write

// Expected is the guest-visible content of a chain: every layer's writes
// applied over zeros from the base up.
type Expected struct {
	Size   int64
	layers []Layer
}

// NewExpected returns the content model for layers (base first).
func NewExpected(size int64, layers ...Layer) *Expected {
	return &Expected{Size: size, layers: layers}
}

// ByteAt returns the expected byte at off.
func (e *Expected) ByteAt(off int64) byte {
	var b byte
	for _, l := range e.layers {
		for _, w := range l {
			if off >= w.Offset && off < w.Offset+w.Length {
				b = w.Byte
			}
		}
	}
	return b
}

// Compare checks data (the disk read from offset 0) against the model and
// describes the first difference.
func (e *Expected) Compare(data []byte) error {
	if int64(len(data)) != e.Size {
		return fmt.Errorf("disk is %d bytes, want %d", len(data), e.Size)
	}
	// Check run by run rather than byte by byte: boundaries are where
	// layers meet, so every boundary is checked.
	cuts := map[int64]bool{0: true, e.Size: true}
	for _, l := range e.layers {
		for _, w := range l {
			cuts[w.Offset], cuts[min(w.Offset+w.Length, e.Size)] = true, true
		}
	}
	var pts []int64
	for c := range cuts {
		pts = append(pts, c)
	}
	sort.Slice(pts, func(i, j int) bool { return pts[i] < pts[j] })
	for i := 0; i+1 < len(pts); i++ {
		lo, hi := pts[i], pts[i+1]
		want := e.ByteAt(lo)
		for k, b := range data[lo:hi] {
			if b != want {
				return fmt.Errorf("byte at offset %d is %#02x, want %#02x (range %d-%d)", lo+int64(k), b, want, lo, hi)
			}
		}
	}
	return nil
}

// Run runs a command and returns its combined output on failure.
func Run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %v: %v\n%s", name, args, err, out)
	}
	return nil
}

// QemuWrite writes the layer's runs into an image with qemu-io.
func QemuWrite(path, format string, l Layer) error {
	if len(l) == 0 {
		return nil
	}
	args := []string{"-f", format}
	for _, w := range l {
		args = append(args, "-c", fmt.Sprintf("write -P %d %d %d", w.Byte, w.Offset, w.Length))
	}
	return Run("qemu-io", append(args, path)...)
}

// VMDKChain makes a VMDK snapshot chain with qemu: a base of the given
// subformat and one monolithicSparse snapshot per further layer, each
// naming its parent with parentFileNameHint. It returns the layer paths,
// newest first.
func VMDKChain(dir, name, subformat string, size int64, layers ...Layer) ([]string, error) {
	var paths []string
	base := filepath.Join(dir, name+".vmdk")
	if err := Run("qemu-img", "create", "-q", "-f", "vmdk", "-o", "subformat="+subformat, base, fmt.Sprint(size)); err != nil {
		return nil, err
	}
	if subformat == "streamOptimized" {
		// streamOptimized images are written once, sequentially; make the
		// content as a raw file and convert it.
		raw := filepath.Join(dir, name+".stream-src.raw")
		if err := RawFile(raw, size, layers[0]); err != nil {
			return nil, err
		}
		if err := Run("qemu-img", "convert", "-q", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized", raw, base); err != nil {
			return nil, err
		}
		os.Remove(raw)
	} else if err := QemuWrite(base, "vmdk", layers[0]); err != nil {
		return nil, err
	}
	paths = append(paths, base)
	parent := base
	for i, l := range layers[1:] {
		p := filepath.Join(dir, fmt.Sprintf("%s-%06d.vmdk", name, i+1))
		// The parent is named relatively, as VMware does.
		if err := Run("qemu-img", "create", "-q", "-f", "vmdk", "-b", filepath.Base(parent), "-F", "vmdk", p); err != nil {
			return nil, err
		}
		if err := QemuWrite(p, "vmdk", l); err != nil {
			return nil, err
		}
		paths = append([]string{p}, paths...)
		parent = p
	}
	return paths, nil
}

// RawFile writes a sparse raw file of size bytes holding the layer.
func RawFile(path string, size int64, l Layer) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return err
	}
	for _, w := range l {
		if _, err := f.WriteAt(bytes.Repeat([]byte{w.Byte}, int(w.Length)), w.Offset); err != nil {
			return err
		}
	}
	return f.Close()
}

// Merge flattens layers (base first) into one layer, for building single
// images that hold a whole chain's content.
func Merge(layers ...Layer) Layer {
	var out Layer
	for _, l := range layers {
		out = append(out, l...)
	}
	return out
}
