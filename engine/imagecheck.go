package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/vmconv/terraform-provider-vmconv/engine/chain"
	"github.com/vmconv/terraform-provider-vmconv/engine/diskformat"
	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/engine/internal/qemuimg"
	"github.com/vmconv/terraform-provider-vmconv/engine/internal/run"
	"github.com/vmconv/terraform-provider-vmconv/engine/vmdk"
)

// checkTarget is one file qemu-img check can open on its own.
type checkTarget struct {
	path, driver, what string
}

// checkTargets lists the files of a layer that qemu-img 7.2 can check on
// their own: qcow2, VDI and VHDX images, and VMDKs that are one sparse
// file with their descriptor inside (monolithicSparse, streamOptimized).
// qemu cannot open a split sparse extent or a vmfsSparse (COWD) delta
// without its descriptor (it fails with "Invalid argument" looking for the
// CID), nor an seSparse extent or a flat one; VHD (vpc) and raw have no
// check. Those rely on the header parsers alone, which check what qemu's
// vmdk check does (every grain inside the file) and more.
func checkTargets(l *chain.Layer) []checkTarget {
	switch l.Format {
	case diskformat.QCOW2, diskformat.VDI, diskformat.VHDX:
		return []checkTarget{{l.Path, string(l.Format), string(l.Format) + " image"}}
	case diskformat.VMDK:
		if len(l.Extents) == 1 && l.Extents[0].Type == vmdk.ExtentSparse && sameFile(l.Extents[0].Path, l.Path) {
			return []checkTarget{{l.Path, "vmdk", "sparse VMDK"}}
		}
	}
	return nil
}

func sameFile(a, b string) bool {
	fa, errA := os.Stat(a)
	fb, errB := os.Stat(b)
	return errA == nil && errB == nil && os.SameFile(fa, fb)
}

// checkChain runs `qemu-img check` on every file of the chain that qemu
// can check, before any data moves: it finds what the header parsers do
// not model, such as refcounts that disagree with the tables. Each check
// opens exactly one file, with the driver pinned and no backing file (see
// qemuimg.CheckSpec). Corruption refuses the source; leaked clusters alone
// are harmless and only warned about.
func (e *Engine) checkChain(ctx context.Context, c *chain.Chain) error {
	if c == nil {
		return nil
	}
	for _, l := range c.Layers {
		for _, t := range checkTargets(l) {
			path := t.path
			if real, err := filepath.EvalSymlinks(path); err == nil {
				path = real
			}
			if abs, err := filepath.Abs(path); err == nil {
				path = abs
			}
			res, err := e.qemu.Check(ctx, path, t.driver)
			if errors.Is(err, qemuimg.ErrCheckUnsupported) {
				continue
			}
			if err != nil {
				if ctx.Err() != nil {
					return fault.Wrap(fault.Cancelled, t.path, ctx.Err(), "the image check was cancelled")
				}
				fe := fault.Wrap(fault.ToolFailed, t.path, err, "qemu-img could not check this %s", t.what).
					WithHint("qemu-img could not open the file to check it: it is damaged in a way vmconv's own checks did not catch, or it is locked by a running VM. Close whatever uses it and retry, or restore the file from its original.")
				var re *run.Error
				if errors.As(err, &re) && re.Stderr != "" {
					fe = fe.WithFact("qemu-img", re.Stderr)
				}
				return fe
			}
			if res.Corrupt() {
				fe := fault.New(fault.CorruptImage, t.path,
					"qemu-img check found %d corruptions and %d check errors in this %s", res.Corruptions, res.CheckErrors, t.what).
					WithHint("The image's metadata is damaged, so converting it would produce a wrong disk. "+
						"Restore the file from its original, or repair a copy with `qemu-img check -r all -f %s` and convert the repaired copy.", t.driver).
					WithFact("Structure", t.what+" metadata checked by qemu-img check -f "+t.driver)
				for _, f := range res.Findings {
					fe = fe.WithFact("qemu-img check", f)
				}
				return fe
			}
			if res.Leaks > 0 {
				c.Warnings = append(c.Warnings, fmt.Sprintf("%s: qemu-img check found %d leaked clusters (allocated but unused space; harmless to the data)",
					filepath.Base(t.path), res.Leaks))
			}
		}
	}
	return nil
}
