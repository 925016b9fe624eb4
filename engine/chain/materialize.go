package chain

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/vmconv/terraform-provider-vmconv/engine/diskformat"
	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/engine/vmdk"
)

// shadowCreateType maps a createType to one qemu accepts in a text
// descriptor; monolithic sparse files are expressed as one SPARSE extent.
func shadowCreateType(ct string) string {
	switch ct {
	case "monolithicSparse", "streamOptimized", "twoGbMaxExtentSparse":
		return "twoGbMaxExtentSparse"
	case "vmfs", "vmfsThin", "vmfsPreallocated", "vmfsEagerZeroedThick", "monolithicFlat", "twoGbMaxExtentFlat":
		return "monolithicFlat"
	}
	return ct
}

// Materialize writes shadow descriptors for the VMDK layers into dir and
// returns the image qemu should open and its driver. Non-VMDK heads are
// returned as they are: their only references (qcow2 backing files) were
// resolved exactly as qemu resolves them.
func (c *Chain) Materialize(dir string) (path, driver string, err error) {
	head := c.Head()
	if head.Format != diskformat.VMDK {
		return head.Path, head.Format.QemuDriver(), nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", err
	}
	name := func(i int) string { return filepath.Join(dir, fmt.Sprintf("layer-%03d.vmdk", i)) }
	for i, l := range c.Layers {
		if l.Format != diskformat.VMDK {
			return "", "", fmt.Errorf("chain: layer %d (%s) is not a VMDK", i, l.Path)
		}
		if l.direct {
			if err := c.linkDirect(dir, i, name); err != nil {
				return "", "", err
			}
			continue
		}
		d := &vmdk.Descriptor{
			Version:    1,
			CID:        l.cid,
			ParentCID:  vmdk.NoParent,
			CreateType: shadowCreateType(l.Subformat),
		}
		if i+1 < len(c.Layers) {
			// Resolve already refused mismatched CIDs unless the user allowed
			// them; qemu refuses to read through a mismatch, so the shadow
			// states the parent's real CID.
			d.ParentCID = c.Layers[i+1].cid
			d.ParentFileNameHint = name(i + 1)
		}
		for _, e := range l.Extents {
			typ := e.Type
			if typ == vmdk.ExtentVMFS {
				typ = vmdk.ExtentFlat // qemu reads both alike; FLAT carries the offset
			}
			d.Extents = append(d.Extents, vmdk.Extent{Access: "RW", Sectors: e.Sectors, Type: typ, Filename: e.Path, Offset: e.Offset})
		}
		if err := os.WriteFile(name(i), d.Marshal(), 0o644); err != nil {
			return "", "", err
		}
	}
	return name(0), "vmdk", nil
}

// linkDirect shadows a layer with a symlink to the file itself. qemu then
// reads the parent hint embedded in it and resolves it against the shadow
// folder, so the parent's shadow is linked in under the hint's name.
func (c *Chain) linkDirect(dir string, i int, name func(int) string) error {
	l := c.Layers[i]
	if err := os.Symlink(l.Extents[0].Path, name(i)); err != nil {
		return err
	}
	if i+1 == len(c.Layers) {
		return nil
	}
	parent := c.Layers[i+1]
	if l.parentRef != filepath.Base(l.parentRef) || l.parentRef == "." || l.parentRef == ".." {
		return fault.New(fault.UnsupportedFormat, l.Path,
			"this streamOptimized snapshot names its parent as %q; vmconv reads such snapshots only when the parent is named by a plain file name", l.parentRef).
			WithHint("Convert the snapshot chain with its parent in the same folder, named by file name only.")
	}
	if l.parentCID != parent.cid {
		return fault.New(fault.ChainCIDMismatch, l.Path,
			"this streamOptimized snapshot's parentCID does not match its parent, and qemu cannot be told otherwise for this layout").
			WithHint("Restore the parent the snapshot was taken from.")
	}
	return os.Symlink(name(i+1), filepath.Join(dir, l.parentRef))
}
