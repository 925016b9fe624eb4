// Package chain resolves a source disk into its snapshot chain: every layer
// from the newest to the base, with every file each layer is made of. It
// validates the whole chain before any data is read: each descriptor, header
// and allocation table, each reference confined to the source folder, no
// loops, and snapshot CIDs that match their parents.
//
// qemu is the data plane, but it follows extent paths, parent hints and
// backing files wherever they point, in its own way, and silently skips
// extent lines it does not know. Materialize therefore never hands qemu a
// source file to interpret: every layer is pinned, with its driver, its
// canonical file and its backing stated (see materialize.go), and VMDK
// layers are read through shadow descriptors that name only the files
// validated here. Names are resolved the way the kernel resolves them (see
// open.go), and only regular files are ever opened for reading.
package chain

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/vmconv/terraform-provider-vmconv/engine/diskformat"
	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/engine/vmdk"
)

// MaxDepth bounds the number of layers; VMware allows 32 snapshots.
const MaxDepth = 255

// MaxExtents bounds the extents of one descriptor: 8 TB split into 2 GB
// extents, the largest disk VMware Workstation and Fusion split (ESXi never
// splits). qemu's open time grows with the square of the extent count
// (34 s for 4,096 here, 4.5 minutes for 10,000), and it opens a disk
// several times per conversion, so the bound is also what keeps a small
// crafted descriptor from holding a plan for an hour.
const MaxExtents = 4096

// File roles.
const (
	RoleDescriptor = "descriptor"
	RoleExtent     = "extent"
	RoleImage      = "image"
)

// File is one file a layer consists of.
type File struct {
	Path string `json:"path"`
	Role string `json:"role"`
	Size int64  `json:"size"`
}

// Extent is a validated VMDK extent.
type Extent struct {
	Path    string `json:"path"` // resolved, absolute
	Type    string `json:"type"`
	Sectors int64  `json:"sectors"`
	Offset  int64  `json:"offset,omitempty"`
}

// Layer is one image of the chain.
type Layer struct {
	Path        string            `json:"path"`
	Format      diskformat.Format `json:"format"`
	Subformat   string            `json:"subformat,omitempty"`
	VirtualSize int64             `json:"virtual_size"`
	CID         string            `json:"cid,omitempty"`
	ParentCID   string            `json:"parent_cid,omitempty"`
	Files       []File            `json:"files"`
	Extents     []Extent          `json:"extents,omitempty"`

	cid, parentCID uint32
	parentRef      string // parent name as written in this layer
	// parentFormat is the format this layer declares for its parent (a
	// qcow2 backing_fmt), which the parent's content must not contradict.
	parentFormat diskformat.Format
	// real is the canonical path qemu is given: every symlink resolved,
	// confined to the source folder.
	real string
	// direct marks a layer qemu must open as itself rather than through a
	// shadow descriptor: qemu looks for a footer-located grain directory at
	// the end of the descriptor file, not of the extent.
	direct bool
}

// Chain is a resolved snapshot chain, newest layer first.
type Chain struct {
	// Dir is the source folder: every file of the chain lies inside it.
	Dir      string   `json:"dir"`
	Layers   []*Layer `json:"layers"`
	Warnings []string `json:"warnings,omitempty"`
}

// Options tune resolution.
type Options struct {
	// Format, if set, declares the head's format instead of detecting it.
	// It must not contradict what the content says.
	Format diskformat.Format
	// AllowParentCIDMismatch turns a snapshot whose parentCID does not match
	// its parent's CID from an error into a warning.
	AllowParentCIDMismatch bool
}

// Head is the newest layer.
func (c *Chain) Head() *Layer { return c.Layers[0] }

// VirtualSize is the guest-visible disk size, the newest layer's.
func (c *Chain) VirtualSize() int64 { return c.Layers[0].VirtualSize }

// Paths lists each layer's path, newest first.
func (c *Chain) Paths() []string {
	out := make([]string, len(c.Layers))
	for i, l := range c.Layers {
		out[i] = l.Path
	}
	return out
}

// Files lists every file of every layer, newest layer first.
func (c *Chain) Files() []File {
	var out []File
	for _, l := range c.Layers {
		out = append(out, l.Files...)
	}
	return out
}

type fileID struct{ dev, ino uint64 }

func idOf(fi fs.FileInfo) (fileID, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}, false
	}
	return fileID{uint64(st.Dev), st.Ino}, true
}

// Resolve validates the image at path and its whole chain.
func Resolve(path string, opts Options) (*Chain, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fault.Wrap(fault.InvalidRequest, path, err, "cannot make the source path absolute")
	}
	loc, err := locate(abs)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fault.New(fault.SourceMissing, abs, "the source disk does not exist").
				WithHint("Check source.path; it must name the newest file of the disk (for a snapshot chain, the newest snapshot's descriptor).")
		}
		return nil, fault.Wrap(fault.SourceUnreadable, abs, err, "cannot resolve the source path")
	}
	r := &resolver{opts: opts, dir: filepath.Dir(loc.Canonical), seen: map[fileID]int{}}
	c := &Chain{Dir: r.dir}
	cur, declared := abs, opts.Format
	for depth := 0; ; depth++ {
		if depth > MaxDepth {
			return nil, fault.New(fault.ChainLoop, cur, "the snapshot chain is deeper than %d layers", MaxDepth).
				WithHint("VMware keeps at most 32 snapshots in a chain; a deeper chain is damaged or crafted. Consolidate the snapshots on the source, then convert again.")
		}
		l, err := r.layer(cur, loc, depth == 0, declared)
		if err != nil {
			return nil, err
		}
		c.Layers = append(c.Layers, l)
		if l.parentRef == "" {
			break
		}
		next, warn, err := r.ref(l, l.parentRef, true)
		if err != nil {
			return nil, err
		}
		if warn != "" {
			c.Warnings = append(c.Warnings, warn)
		}
		cur, loc, declared = next.Canonical, next, l.parentFormat
	}
	r.warnings = append(r.warnings, c.Warnings...)
	c.Warnings = r.warnings
	for i := 0; i+1 < len(c.Layers); i++ {
		child, parent := c.Layers[i], c.Layers[i+1]
		if child.Format == diskformat.VMDK && parent.Format != diskformat.VMDK {
			return nil, fault.New(fault.CorruptImage, parent.Path,
				"the VMDK snapshot %s names this file as its parent, but it is a %s image, not a VMDK", child.Path, parent.Format)
		}
		if child.Format == diskformat.VMDK && child.parentCID != parent.cid {
			msg := fmt.Sprintf("snapshot %s expects its parent to have CID %08x, but %s has CID %08x",
				filepath.Base(child.Path), child.parentCID, filepath.Base(parent.Path), parent.cid)
			if !opts.AllowParentCIDMismatch {
				return nil, fault.New(fault.ChainCIDMismatch, child.Path, "%s", msg).
					WithHint("The parent was modified after the snapshot was taken, so the snapshot may not apply cleanly to it. "+
						"If you know the parent's changes are harmless (for example, only its descriptor was edited), set source.allow_parent_cid_mismatch = true.").
					WithFact("Parent", parent.Path)
			}
			c.Warnings = append(c.Warnings, msg+" (allowed by allow_parent_cid_mismatch)")
		}
		if child.VirtualSize != parent.VirtualSize {
			c.Warnings = append(c.Warnings, fmt.Sprintf("layer %s is %d bytes but its parent %s is %d bytes",
				filepath.Base(child.Path), child.VirtualSize, filepath.Base(parent.Path), parent.VirtualSize))
		}
	}
	return c, nil
}

type resolver struct {
	opts     Options
	dir      string
	seen     map[fileID]int // file -> layer index, for loop detection
	order    []string
	warnings []string
}

// ref resolves a name written inside the layer from, the way the kernel
// would (relative to from's canonical folder), and confines it to the
// source folder. For parent hints written as absolute datastore paths
// (/vmfs/volumes/...) that do not exist here or lie outside the folder, a
// file of the same name beside the child is used, as downloaded chains keep
// their layers together; qemu is then pinned to that file too, so what was
// checked is what is read.
func (r *resolver) ref(from *Layer, name string, parent bool) (*located, string, error) {
	what := "extent"
	if parent {
		what = "parent"
	}
	if strings.ContainsAny(name, "\x00\n\r\"") {
		return nil, "", fault.New(fault.CorruptDescriptor, from.Path, "the %s name %q contains characters no file name may have", what, name)
	}
	if name == "" {
		return nil, "", fault.New(fault.CorruptDescriptor, from.Path, "the %s name is empty", what)
	}
	dir := filepath.Dir(from.real)
	p := name
	if !filepath.IsAbs(p) {
		p = dir + string(filepath.Separator) + name // not Join: Join cleans ".." textually
	}
	loc, err := locate(p)
	var warn string
	if parent && filepath.IsAbs(name) && (err != nil || !r.inside(loc.Canonical)) {
		alt := filepath.Join(dir, filepath.Base(name))
		if altLoc, altErr := locate(alt); altErr == nil {
			warn = fmt.Sprintf("%s names its parent by the absolute path %q; using %s from the same folder", filepath.Base(from.Path), name, filepath.Base(alt))
			loc, err, p = altLoc, nil, alt
		}
	}
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			if parent {
				return nil, "", fault.New(fault.ChainParentMissing, from.Path, "the parent disk %q of this snapshot does not exist", name).
					WithHint("Copy the whole snapshot chain into one folder: every file the descriptors name, down to the base disk.").
					WithFact("Looked for", p)
			}
			return nil, "", fault.New(fault.SourceMissing, from.Path, "the extent file %q named by this descriptor does not exist", name).
				WithHint("Copy every extent file the descriptor lists into the same folder as the descriptor.").
				WithFact("Looked for", p)
		}
		return nil, "", fault.Wrap(fault.SourceUnreadable, from.Path, err, "cannot resolve the %s %q", what, name)
	}
	if !r.inside(loc.Canonical) {
		return nil, "", fault.New(fault.PathOutsideSource, from.Path,
			"the %s %q resolves to %s, outside the source folder %s", what, name, loc.Canonical, r.dir).
			WithHint("vmconv reads only files inside the folder of source.path, so a disk cannot make it read other files. "+
				"Put the %s in that folder (a copy, not a symlink out of it) and name it relatively.", what)
	}
	if strings.ContainsAny(loc.Canonical, "\"\n\r") {
		return nil, "", fault.New(fault.InvalidRequest, loc.Canonical, "the path contains a quote or line break, which vmconv cannot pass to qemu safely").
			WithHint("Rename the file or folder.")
	}
	if !loc.Info.Mode().IsRegular() {
		return nil, "", fault.New(fault.InvalidRequest, from.Path, "the %s %q is %s, not a disk image file", what, name, kind(loc.Info.Mode())).
			WithHint("vmconv reads only regular files, so a disk cannot make it wait on a pipe or read a device. Replace it with the real %s file.", what).
			WithFact("Resolves to", loc.Canonical)
	}
	return loc, warn, nil
}

// inside reports whether a canonical path lies in the source folder.
func (r *resolver) inside(canon string) bool {
	rel, err := filepath.Rel(r.dir, canon)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}

func (r *resolver) layer(path string, loc *located, head bool, declared diskformat.Format) (*Layer, error) {
	if !loc.Info.Mode().IsRegular() {
		what := "the source"
		if !head {
			what = "this layer of the chain"
		}
		return nil, fault.New(fault.InvalidRequest, path, "%s is %s, not a disk image file", what, kind(loc.Info.Mode())).
			WithHint("Point source.path at a disk image file; vmconv reads only regular files, so a disk cannot make it wait on a pipe or read a device.")
	}
	f, fi, err := openRegular(loc.Canonical)
	if err != nil {
		if errors.Is(err, errNotRegular) {
			return nil, fault.New(fault.InvalidRequest, path, "the disk file was replaced by %s while it was being read", kind(fi.Mode()))
		}
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fault.New(fault.SourceMissing, path, "the disk file does not exist")
		}
		return nil, fault.Wrap(fault.SourceUnreadable, path, err, "cannot open the disk file")
	}
	defer f.Close()
	if id, ok := idOf(fi); ok {
		if i, dup := r.seen[id]; dup {
			cycle := append(append([]string{}, r.order[i:]...), path)
			return nil, fault.New(fault.ChainLoop, path,
				"the snapshot chain loops back on itself: %s", strings.Join(baseNames(cycle), " -> ")).
				WithHint("A snapshot's parentFileNameHint (or qcow2 backing file) points back at a newer layer. Restore the descriptors from the original datastore.")
		}
		r.seen[id] = len(r.order)
	}
	r.order = append(r.order, path)

	det, ok, err := diskformat.Detect(f)
	if err != nil {
		return nil, fault.Wrap(fault.SourceUnreadable, path, err, "cannot read the disk file")
	}
	switch {
	case head && declared != "":
		if ok && det.Format != declared && !(det.Format == diskformat.Raw) {
			return nil, fault.New(fault.InvalidRequest, path,
				"source.format says %s, but the content is %s (%s)", declared, det.Format, det.Evidence).
				WithHint("Remove source.format to let vmconv detect the format, or fix it.")
		}
		if !ok || det.Format == diskformat.Raw {
			det = diskformat.Detected{Format: declared, Kind: diskformat.KindWhole, Evidence: "declared by source.format"}
			if declared == diskformat.VMDK {
				return nil, fault.New(fault.UnknownFormat, path, "source.format says vmdk but the content is not a VMDK")
			}
		}
	case declared != "":
		// A qcow2 names its backing file's format. qemu would read the
		// file as that format whatever it holds, so the two must agree:
		// a qcow2 read as raw, or raw bytes read as a qcow2, is how a disk
		// smuggles in a reference that was never checked.
		if ok && det.Format != declared && !(declared == diskformat.Raw && det.Kind == diskformat.KindWhole && det.Format == diskformat.Raw) {
			return nil, fault.New(fault.CorruptImage, path,
				"the layer above names this file's format as %s, but its content is %s (%s)", declared, det.Format, det.Evidence).
				WithHint("A backing file must be what its child's backing_fmt says. Restore the chain from its source, or rebase the child with qemu-img rebase -F on a copy.")
		}
		if !ok {
			if declared != diskformat.Raw {
				return nil, fault.New(fault.CorruptImage, path, "the layer above names this file's format as %s, but its content is not %s", declared, declared)
			}
			det = diskformat.Detected{Format: diskformat.Raw, Kind: diskformat.KindWhole, Evidence: "declared raw by its child's backing_fmt"}
		}
	case !ok:
		return nil, fault.New(fault.UnknownFormat, path,
			"the file's content matches no supported disk format (%s) and holds no partition table or file system a raw disk would", joinFormats()).
			WithHint("If this is a raw disk that starts with unrecognisable data, declare it with source.format = \"raw\". Otherwise check that source.path names a disk image and not, say, a .vmx or .nvram file.").
			WithFact("Starts with", firstBytes(f)).WithFact("Size", fmt.Sprintf("%d bytes", fi.Size()))
	}
	l := &Layer{Path: path, Format: det.Format, real: loc.Canonical}
	switch det.Kind {
	case diskformat.KindDescriptor:
		err = r.vmdkDescriptor(f, fi.Size(), l)
	case diskformat.KindHostedSparse:
		err = r.vmdkMonolithic(f, fi.Size(), l)
	case diskformat.KindCOWD, diskformat.KindSESparse:
		err = fault.New(fault.InvalidRequest, path,
			"this is the data file of an ESX snapshot (%s), not a disk: the disk is its text descriptor", det.Evidence).
			WithHint("Point source.path at the descriptor, usually the same name without -delta or -sesparse (for example web-000001.vmdk).")
	default:
		err = r.single(f, fi.Size(), l)
	}
	if err != nil {
		return nil, withFile(err, path)
	}
	return l, nil
}

func baseNames(paths []string) []string {
	out := make([]string, len(paths))
	for i, p := range paths {
		out[i] = filepath.Base(p)
	}
	return out
}

func joinFormats() string {
	var s []string
	for _, f := range diskformat.Inputs {
		s = append(s, string(f))
	}
	return strings.Join(s, ", ")
}

// withFile fills in the file of a fault that does not name one yet.
func withFile(err error, path string) error {
	if fe, ok := fault.As(err); ok {
		if fe.File == "" {
			fe.File = path
		}
		return fe
	}
	return fault.Wrap(fault.Internal, path, err, "unexpected error")
}

func (r *resolver) single(f *os.File, size int64, l *Layer) error {
	info, err := diskformat.Inspect(l.Format, f, size)
	if err != nil {
		return err
	}
	l.VirtualSize = info.VirtualSize
	l.Files = []File{{Path: l.Path, Role: RoleImage, Size: size}}
	l.parentRef = info.Backing
	if info.BackingFormat != "" {
		pf, ok := formatOfDriver(info.BackingFormat)
		if !ok {
			return fault.New(fault.UnsupportedFormat, l.Path, "the qcow2 names its backing file's format as %q, which is not a disk format vmconv reads", info.BackingFormat).
				WithHint("Convert the chain to a self-contained image first, or rebase it onto a file of a supported format (%s).", joinFormats())
		}
		l.parentFormat = pf
	}
	for _, w := range info.Warnings {
		r.warnings = append(r.warnings, fmt.Sprintf("%s: %s", filepath.Base(l.Path), w))
	}
	if l.Format == diskformat.VHD {
		l.Subformat = "vpc"
	}
	return nil
}

// maxSectors bounds an extent's size and offset (512 TiB), far beyond
// VMware's 62 TB, so that no sector arithmetic can overflow.
const maxSectors = 1 << 40

// firstBytes renders the start of a file for a diagnostic.
func firstBytes(f *os.File) string {
	b := make([]byte, 16)
	n, _ := f.ReadAt(b, 0)
	b = b[:n]
	if n == 0 {
		return "(empty file)"
	}
	txt := make([]byte, n)
	for i, c := range b {
		txt[i] = '.'
		if c >= 0x20 && c < 0x7f {
			txt[i] = c
		}
	}
	return fmt.Sprintf("% x  |%s|", b, txt)
}

// RawRange is a range of a source file that holds part of a guest disk byte
// for byte.
type RawRange struct {
	Path           string
	Offset, Length int64
}

// RawRanges returns the file ranges that make up the guest disk, in order,
// when the chain is one layer stored raw: a raw image, or a VMDK whose
// extents are all flat. Such a disk can be copied without decoding it.
func (c *Chain) RawRanges() ([]RawRange, bool) {
	if len(c.Layers) != 1 {
		return nil, false
	}
	l := c.Layers[0]
	switch l.Format {
	case diskformat.Raw:
		return []RawRange{{Path: l.real, Length: l.VirtualSize}}, l.real != ""
	case diskformat.VMDK:
		var out []RawRange
		var total int64
		for _, e := range l.Extents {
			if e.Type != vmdk.ExtentFlat && e.Type != vmdk.ExtentVMFS {
				return nil, false
			}
			out = append(out, RawRange{Path: e.Path, Offset: e.Offset * 512, Length: e.Sectors * 512})
			total += e.Sectors * 512
		}
		return out, len(out) > 0 && total == l.VirtualSize
	}
	return nil, false
}
