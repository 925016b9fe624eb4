package chain

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/vmconv/terraform-provider-vmconv/engine/diskformat"
	"github.com/vmconv/terraform-provider-vmconv/engine/vmdk"
)

// A source named by a chain layer that has a newer snapshot beside it
// converts without that snapshot's writes, and nothing about the output
// shows it: VMware keeps the base web.vmdk next to web-000001.vmdk, and
// naming the first is an easy mistake. NewerSnapshots finds, in the head's
// folder, the files that name the head as their parent.

// maxScan bounds the folder entries NewerSnapshots looks at; a VM's folder
// holds a few dozen files.
const maxScan = 4096

// NewerSnapshots lists the files in the head's folder that are snapshots of
// the head: each names the head as its parent (a VMDK's parentFileNameHint,
// a qcow2's backing file). It reads only headers and descriptors.
func (c *Chain) NewerSnapshots() ([]string, error) {
	head := c.Head()
	hi, err := os.Stat(head.real)
	if err != nil {
		return nil, err
	}
	own := map[string]bool{}
	for _, f := range c.Files() {
		own[f.Path] = true
	}
	dir := filepath.Dir(head.real)
	d, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	names, err := d.Readdirnames(maxScan)
	if err != nil && len(names) == 0 {
		return nil, nil
	}
	sort.Strings(names)
	var newer []string
	for _, n := range names {
		p := filepath.Join(dir, n)
		if own[p] {
			continue
		}
		ref := parentRef(p)
		if ref == "" {
			continue
		}
		target := ref
		if !filepath.IsAbs(target) {
			target = dir + string(filepath.Separator) + ref
		} else if _, err := os.Stat(target); err != nil {
			// A datastore path: the parent is the file of that name here,
			// as Resolve reads it.
			target = filepath.Join(dir, filepath.Base(ref))
		}
		if ti, err := os.Stat(target); err == nil && os.SameFile(ti, hi) {
			newer = append(newer, p)
		}
	}
	return newer, nil
}

// parentRef reads the parent a file names, if it is a snapshot layer vmconv
// reads; "" otherwise. Only regular files are opened.
func parentRef(p string) string {
	loc, err := locate(p)
	if err != nil || !loc.Info.Mode().IsRegular() {
		return ""
	}
	f, fi, err := openRegular(loc.Canonical)
	if err != nil {
		return ""
	}
	defer f.Close()
	det, ok, err := diskformat.Detect(f)
	if err != nil || !ok {
		return ""
	}
	switch det.Kind {
	case diskformat.KindDescriptor:
		if fi.Size() > vmdk.MaxDescriptorSize {
			return ""
		}
		b := make([]byte, fi.Size())
		if _, err := f.ReadAt(b, 0); err != nil {
			return ""
		}
		if d, err := vmdk.ParseDescriptor(b); err == nil {
			return d.ParentFileNameHint
		}
	case diskformat.KindHostedSparse:
		if h, err := vmdk.ReadSparseHeader(f, fi.Size()); err == nil && h.DescriptorOffset != 0 {
			if raw, err := h.EmbeddedDescriptor(f); err == nil {
				if d, err := vmdk.ParseDescriptor(raw); err == nil {
					return d.ParentFileNameHint
				}
			}
		}
	case diskformat.KindWhole:
		if det.Format == diskformat.QCOW2 {
			return qcow2Backing(f)
		}
	}
	return ""
}

// qcow2Backing reads a qcow2's backing file name from its header alone.
func qcow2Backing(f *os.File) string {
	h := make([]byte, 20)
	if _, err := f.ReadAt(h, 0); err != nil {
		return ""
	}
	off, n := binary.BigEndian.Uint64(h[8:]), binary.BigEndian.Uint32(h[16:])
	if off == 0 || n == 0 || n > 1023 || off > 1<<20 {
		return ""
	}
	b := make([]byte, n)
	if _, err := f.ReadAt(b, int64(off)); err != nil {
		return ""
	}
	return string(b)
}

// NewerSnapshotHint is what to tell a user whose source has newer
// snapshots: which file, and the two ways out.
func NewerSnapshotHint(newer []string) string {
	return fmt.Sprintf("Point the source at the newest snapshot (%s, or a snapshot of it), so the output holds the VM's latest writes. "+
		"If you mean to convert the disk as it was when that snapshot was taken, set allow_older_snapshot = true.", filepath.Base(newer[0]))
}
