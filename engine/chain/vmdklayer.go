package chain

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/vmconv/terraform-provider-vmconv/engine/diskformat"
	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/engine/vmdk"
)

func (r *resolver) vmdkMonolithic(f *os.File, size int64, l *Layer) error {
	h, err := vmdk.ReadSparseHeader(f, size)
	if err != nil {
		return err
	}
	if h.DescriptorOffset == 0 {
		return fault.New(fault.InvalidRequest, l.Path,
			"this is one extent of a split (twoGbMaxExtentSparse) VMDK, not a disk: the disk is its text descriptor").
			WithHint("Point source.path at the small descriptor .vmdk that lists this file as an extent.")
	}
	raw, err := h.EmbeddedDescriptor(f)
	if err != nil {
		return err
	}
	d, err := vmdk.ParseDescriptor(raw)
	if err != nil {
		return fault.Wrap(fault.CorruptDescriptor, l.Path, err, "the descriptor embedded in the sparse VMDK is invalid")
	}
	if d.CreateType != "monolithicSparse" && d.CreateType != "streamOptimized" {
		return fault.New(fault.CorruptDescriptor, l.Path, "the embedded descriptor says createType %q, which a single sparse file cannot be", d.CreateType)
	}
	if c := uint64(d.Capacity() / 512); c != h.Capacity {
		return fault.New(fault.CorruptDescriptor, l.Path, "the embedded descriptor lists %d sectors but the header says %d", c, h.Capacity)
	}
	if err := h.CheckTables(f, size); err != nil {
		return err
	}
	r.noteUnchecked(l.Path, h.Unchecked)
	l.Subformat = d.CreateType
	if h.Compressed() {
		l.Subformat = "streamOptimized"
	}
	l.direct = h.FooterGD
	l.VirtualSize = int64(h.Capacity) * 512
	l.cid, l.parentCID = d.CID, d.ParentCID
	l.CID, l.ParentCID = fmt.Sprintf("%08x", d.CID), fmt.Sprintf("%08x", d.ParentCID)
	l.parentRef = d.ParentFileNameHint
	l.Files = []File{{Path: l.Path, Role: RoleImage, Size: size}}
	l.Extents = []Extent{{Path: l.Path, Type: vmdk.ExtentSparse, Sectors: int64(h.Capacity)}}
	return nil
}

func (r *resolver) vmdkDescriptor(f *os.File, size int64, l *Layer) error {
	if size > vmdk.MaxDescriptorSize {
		return fault.New(fault.CorruptDescriptor, l.Path, "a %d-byte text descriptor is implausibly large", size)
	}
	raw := make([]byte, size)
	if _, err := f.ReadAt(raw, 0); err != nil {
		return fault.Wrap(fault.SourceUnreadable, l.Path, err, "cannot read the descriptor")
	}
	d, err := vmdk.ParseDescriptor(raw)
	if err != nil {
		return fault.Wrap(fault.CorruptDescriptor, l.Path, err, "the VMDK descriptor is invalid").
			WithHint("Restore the descriptor from the original datastore; vmconv does not guess at damaged descriptors.")
	}
	if !vmdk.IsSupportedCreateType(d.CreateType) {
		return fault.New(fault.UnsupportedFormat, l.Path, "VMDK createType %q is not supported", d.CreateType).
			WithHint("Raw device mappings and device-backed disks have no image file to convert. Supported types: %s.", strings.Join(vmdk.SupportedCreateTypes(), ", "))
	}
	if d.CreateType == "monolithicSparse" || d.CreateType == "streamOptimized" {
		return fault.New(fault.CorruptDescriptor, l.Path, "a standalone text descriptor cannot have createType %q (it belongs inside a sparse file)", d.CreateType)
	}
	l.Subformat = d.CreateType
	l.VirtualSize = d.Capacity()
	l.cid, l.parentCID = d.CID, d.ParentCID
	l.CID, l.ParentCID = fmt.Sprintf("%08x", d.CID), fmt.Sprintf("%08x", d.ParentCID)
	l.parentRef = d.ParentFileNameHint
	l.Files = []File{{Path: l.Path, Role: RoleDescriptor, Size: size}}
	if len(d.Extents) > MaxExtents {
		return fault.New(fault.CorruptDescriptor, l.Path, "the descriptor lists %d extents, more than the %d vmconv reads", len(d.Extents), MaxExtents).
			WithHint("No real disk has that many: VMware splits disks of at most 8 TB into 2 GB extents, 4,096 of them. Restore the descriptor from the original datastore.")
	}
	files := map[fileID]int{}
	for i, e := range d.Extents {
		if e.Access == "NOACCESS" {
			return fault.New(fault.UnsupportedFormat, l.Path, "extent %d is marked NOACCESS; its data is not available", i+1)
		}
		loc, _, err := r.ref(l, e.Filename, false)
		if err != nil {
			return err
		}
		if id, ok := idOf(loc.Info); ok {
			// Two extents on one file would let a disk read its own
			// metadata as data, and checking the same tables again and
			// again is how a small descriptor makes the check run for hours.
			if j, dup := files[id]; dup && !flatSlices(d.Extents[j], e) {
				return fault.New(fault.CorruptDescriptor, l.Path, "extents %d and %d both name the file %s", j+1, i+1, loc.Canonical).
					WithHint("Every extent of a VMDK has its own file, except slices of one flat file. Restore the descriptor from the original datastore.")
			}
			files[id] = i
		}
		unchecked, err := checkExtent(loc.Canonical, e)
		if err != nil {
			return withFile(err, loc.Canonical)
		}
		r.noteUnchecked(loc.Canonical, unchecked)
		l.Files = append(l.Files, File{Path: loc.Canonical, Role: RoleExtent, Size: loc.Info.Size()})
		l.Extents = append(l.Extents, Extent{Path: loc.Canonical, Type: e.Type, Sectors: e.Sectors, Offset: e.Offset})
	}
	return nil
}

// formatOfDriver maps a qemu driver name, as a qcow2 backing_fmt holds it,
// to the format vmconv reads.
func formatOfDriver(d string) (diskformat.Format, bool) {
	for _, f := range diskformat.Inputs {
		if f.QemuDriver() == d {
			return f, true
		}
	}
	return "", false
}

// noteUnchecked warns that a sparse file's tables were larger than the
// check reads, so part of them was not checked (qemu still refuses a bad
// entry when it reads it, mid-conversion).
func (r *resolver) noteUnchecked(path string, unchecked bool) {
	if unchecked {
		r.warnings = append(r.warnings, fmt.Sprintf("%s: its grain tables are larger than the plan's check reads; the rest is checked by qemu as it converts", filepath.Base(path)))
	}
}

// flatSlices reports whether two extents are both flat, the one layout
// where several extents may lie in one file (at different offsets).
func flatSlices(a, b vmdk.Extent) bool {
	flat := func(e vmdk.Extent) bool { return e.Type == vmdk.ExtentFlat || e.Type == vmdk.ExtentVMFS }
	return flat(a) && flat(b)
}

// checkExtent validates one extent file; unchecked reports a sparse
// extent whose tables were too large to check in full.
func checkExtent(path string, e vmdk.Extent) (unchecked bool, err error) {
	f, fi, err := openRegular(path)
	if err != nil {
		if errors.Is(err, errNotRegular) {
			return false, fault.New(fault.InvalidRequest, path, "the extent is %s, not a disk image file", kind(fi.Mode()))
		}
		return false, fault.Wrap(fault.SourceUnreadable, path, err, "cannot open the extent")
	}
	defer f.Close()
	size := fi.Size()
	switch e.Type {
	case vmdk.ExtentFlat, vmdk.ExtentVMFS:
		if e.Offset < 0 || e.Sectors < 0 || e.Offset > maxSectors || e.Sectors > maxSectors {
			return false, fault.New(fault.CorruptDescriptor, path, "the flat extent's %d sectors from sector %d are out of range", e.Sectors, e.Offset)
		}
		if need := (e.Offset + e.Sectors) * 512; size < need {
			return false, fault.New(fault.TruncatedImage, path,
				"the flat extent must hold %d bytes (%d sectors from sector %d) but the file is only %d bytes long", need, e.Sectors, e.Offset, size).
				WithHint("The extent was cut short by an interrupted copy. Copy it again from the datastore and compare its size.")
		}
		return false, nil
	}
	switch e.Type {
	case vmdk.ExtentSparse:
		h, err := vmdk.ReadSparseHeader(f, size)
		if err != nil {
			return false, err
		}
		if int64(h.Capacity) != e.Sectors {
			return false, fault.New(fault.CorruptImage, path, "the extent header says %d sectors, the descriptor %d", h.Capacity, e.Sectors)
		}
		err = h.CheckTables(f, size)
		return h.Unchecked, err
	case vmdk.ExtentVMFSSparse:
		h, err := vmdk.ReadCOWDHeader(f, size)
		if err != nil {
			return false, err
		}
		if int64(h.Sectors) != e.Sectors {
			return false, fault.New(fault.CorruptImage, path, "the vmfsSparse header says %d sectors, the descriptor %d", h.Sectors, e.Sectors)
		}
		err = h.CheckTables(f, size)
		return h.Unchecked, err
	case vmdk.ExtentSESparse:
		h, err := vmdk.ReadSESparseHeader(f, size)
		if err != nil {
			return false, err
		}
		if int64(h.Capacity) != e.Sectors {
			return false, fault.New(fault.CorruptImage, path, "the seSparse header says %d sectors, the descriptor %d", h.Capacity, e.Sectors)
		}
		err = h.CheckTables(f, size)
		return h.Unchecked, err
	}
	return false, fault.New(fault.UnsupportedFormat, path, "extent type %s is not supported", e.Type).
		WithHint("ZERO, raw-device and RDM extents have no data vmconv can read.")
}
