package chain

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/vmconv/terraform-provider-vmconv/engine/diskformat"
	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/engine/vmdk"
)

// Why the chain is pinned. Handed an image file, qemu follows whatever the
// file names: a qcow2's backing file and backing format, a VMDK's parent
// hint and extents, json: pseudo-protocol names. Resolve checked those
// names, but qemu resolves them itself, its own way, and a file can name
// one thing to a checker and another to qemu (a decoy beside the source, a
// symlinked folder under "..", a backing format that makes qemu read a
// second header). So qemu is never handed a source file to interpret.
// Each layer is given to it as a node with its driver stated (no format
// probing), its file by canonical path through the plain file protocol (no
// protocol parsing), and its backing stated too, down to an explicit
// "none" under the base. VMDK layers are read through shadow descriptors
// that name only the validated extents. qemu then opens exactly the files
// Resolve validated and nothing else.
//
// The pins are small qcow2 overlays, one per layer, each carrying its
// layer's node in its backing file name. They exist because a qcow2 keeps
// at most 1023 bytes of backing name, so a whole chain does not fit in
// one; and because every consumer (qemu-img, the libguestfs appliance, the
// boot test's qemu) then opens one plain qcow2 file, with no JSON on any
// command line.

// OverlayMaker creates a qcow2 overlay on a backing image (qemu-img).
type OverlayMaker interface {
	CreateOverlay(ctx context.Context, path, backing, backingDriver string) error
}

// maxBackingName is qcow2's limit on a backing file name.
const maxBackingName = 1023

// node is one layer as qemu's block layer takes it.
type node struct {
	Driver string `json:"driver"`
	File   struct {
		Driver   string `json:"driver"`
		Filename string `json:"filename"`
	} `json:"file"`
	// Backing is another node, or JSON null for "no backing file". Drivers
	// that have no backing files get neither.
	Backing any `json:"backing,omitempty"`
}

// jsonNull marshals to null, which omitempty does not drop.
type jsonNull struct{}

func (jsonNull) MarshalJSON() ([]byte, error) { return []byte("null"), nil }

func fileNode(driver, path string) *node {
	n := &node{Driver: driver}
	n.File.Driver, n.File.Filename = "file", path
	return n
}

// hasBacking lists the qemu drivers that open backing files. The others
// (raw, vpc, vhdx, vdi) refuse a "backing" option, and their formats'
// parents were refused by Resolve.
func hasBacking(driver string) bool { return driver == "qcow2" || driver == "vmdk" }

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

// Materialize writes the pinned chain into dir and returns the image qemu
// should open, a qcow2 file, and its driver. The files it names must stay
// in dir while qemu uses them.
//
// A run of VMDK layers (always the bottom of a chain: a VMDK's parent is a
// VMDK) is the one place qemu follows names itself: each shadow descriptor
// names the next shadow by its absolute path in dir, because qemu's VMDK
// driver checks a snapshot's parent CID only against a VMDK parent, so a
// pin cannot sit between two VMDK layers. Every name in that run was
// written here, and every extent it names was validated.
func (c *Chain) Materialize(ctx context.Context, dir string, mk OverlayMaker) (path, driver string, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", err
	}
	pin := func(i int) string { return filepath.Join(dir, fmt.Sprintf("pin-%03d.qcow2", i)) }
	shadow := func(i int) string { return filepath.Join(dir, fmt.Sprintf("layer-%03d.vmdk", i)) }
	for i := len(c.Layers) - 1; i >= 0; i-- {
		l := c.Layers[i]
		var n *node
		if l.Format == diskformat.VMDK {
			if err := c.writeShadow(dir, i, shadow); err != nil {
				return "", "", err
			}
			if i > 0 && c.Layers[i-1].Format == diskformat.VMDK {
				continue // reached through the child's shadow
			}
			n = fileNode("vmdk", shadow(i))
			if i+1 == len(c.Layers) {
				n.Backing = jsonNull{}
			}
		} else {
			n = fileNode(l.Format.QemuDriver(), l.real)
			if hasBacking(n.Driver) {
				if i+1 < len(c.Layers) {
					n.Backing = fileNode("qcow2", pin(i+1))
				} else {
					n.Backing = jsonNull{}
				}
			}
		}
		spec, err := json.Marshal(n)
		if err != nil {
			return "", "", err
		}
		name := "json:" + string(spec)
		if len(name) > maxBackingName {
			return "", "", fault.New(fault.InvalidRequest, l.Path,
				"the path of this layer (or of the work folder) is too long to pin for qemu: %d bytes where qcow2 keeps at most %d", len(name), maxBackingName).
				WithHint("Move the source, or the provider's work_dir, to a shorter path.")
		}
		if err := mk.CreateOverlay(ctx, pin(i), name, n.Driver); err != nil {
			return "", "", fmt.Errorf("pinning layer %d (%s): %w", i, l.Path, err)
		}
	}
	return pin(0), "qcow2", nil
}

// writeShadow writes VMDK layer i's shadow: a descriptor naming only the
// validated extents and the next shadow, or for a layer qemu must open as
// itself, a symlink to the file.
func (c *Chain) writeShadow(dir string, i int, name func(int) string) error {
	l := c.Layers[i]
	if l.direct {
		return c.linkDirect(dir, i, name)
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
	return os.WriteFile(name(i), d.Marshal(), 0o644)
}

// linkDirect shadows a layer with a symlink to the file itself: qemu looks
// for a footer-located grain directory at the end of the file it opens as
// the descriptor, not of the extent. qemu then reads the parent hint
// embedded in the file and resolves it against the shadow folder, so the
// parent's shadow is linked in under the hint's name, which must be a
// plain file name: nothing outside dir can be reached that way.
func (c *Chain) linkDirect(dir string, i int, name func(int) string) error {
	l := c.Layers[i]
	if err := os.Symlink(l.real, name(i)); err != nil {
		return err
	}
	if i+1 == len(c.Layers) {
		return nil
	}
	parent := c.Layers[i+1]
	if l.parentRef != filepath.Base(l.parentRef) || l.parentRef == "." || l.parentRef == ".." || strings.HasPrefix(l.parentRef, "layer-") || strings.HasPrefix(l.parentRef, "pin-") {
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
