package ovf

import (
	"github.com/vmconv/terraform-provider-vmconv/engine/internal/room"

	"archive/tar"
	"bufio"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"math"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
)

// OVA is an extracted archive.
type OVA struct {
	OVF *OVF `json:"ovf"`
	// Disks are the extracted disks, in the OVF's order.
	Disks []string `json:"disks"`
	// Verified lists the members a manifest checked.
	Verified []string `json:"verified,omitempty"`
}

var mfLine = regexp.MustCompile(`^(SHA1|SHA256|SHA512)\s*\((.+)\)\s*=\s*([0-9a-fA-F]+)\s*$`)

// ExtractOVA streams an OVA (a tar) once: the OVF, the manifest and the
// disks the OVF names go to dir; nothing else is written. A member whose
// name could land outside dir, a link, a duplicate, a sparse member, a disk
// the OVF names but the archive lacks, and a manifest checksum mismatch are
// refused, and what was extracted is removed.
//
// Every byte written is bounded before it is written: a disk member may not
// be larger than the OVF's ovf:size for its file, nor much larger than the
// disk's capacity, nor than the room in dir (see room). Sparse members are
// refused rather than kept sparse: the OVF specification (DSP0243) makes an
// OVA a USTAR archive, which has no sparse members, and neither ovftool nor
// VirtualBox writes them; Go's tar reader would expand the holes into
// zeros, so a few KiB of archive could claim terabytes.
func ExtractOVA(ctx context.Context, archive, dir string) (_ *OVA, err error) {
	f, err := os.Open(archive)
	if err != nil {
		return nil, fault.Wrap(fault.SourceMissing, archive, err, "cannot open the OVA")
	}
	defer f.Close()
	hostile := func(format string, a ...any) error {
		return fault.New(fault.HostileArchive, archive, format, a...).
			WithHint("The archive is malformed or crafted; re-export the VM, and do not convert archives from untrusted sources.")
	}
	hostileMember := func(member, format string, a ...any) error {
		return fault.New(fault.HostileArchive, MemberLabel(archive, member), format, a...).
			WithHint("The archive is malformed or crafted; re-export the VM, and do not convert archives from untrusted sources. Nothing was kept.")
	}
	var written []string
	defer func() {
		if err != nil {
			for _, p := range written {
				os.Remove(p)
			}
		}
	}()
	var (
		out      = &OVA{}
		seen     = map[string]bool{}
		sums     = map[string]map[string]string{} // member -> algorithm -> hex
		manifest map[string][2]string             // member -> algorithm, hex
		want     = map[string]bool{}
		disks    = map[string]OVFDisk{}
	)
	tr := tar.NewReader(bufio.NewReaderSize(f, 1<<20))
	for {
		if ctx.Err() != nil {
			return nil, fault.Wrap(fault.Cancelled, archive, ctx.Err(), "cancelled")
		}
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fault.Wrap(fault.TruncatedImage, archive, err, "the OVA's tar stream is truncated or corrupt")
		}
		name := h.Name
		clean := path.Clean(name)
		switch {
		case name == "" || path.IsAbs(name) || strings.HasPrefix(name, "\\") || filepath.VolumeName(name) != "":
			return nil, hostile("member %q has an absolute path", name)
		case clean == ".." || strings.HasPrefix(clean, "../") || strings.Contains(name, "\\"):
			return nil, hostile("member %q climbs out of the archive", name)
		case strings.Contains(clean, "/"):
			return nil, hostile("member %q is in a folder; OVA members are flat", name)
		case sparse(h):
			return nil, hostileMember(clean, "member %q is a sparse file claiming %d bytes (a GNU or PAX sparse tar member); an OVA is a USTAR archive and never holds one", name, h.Size)
		case h.Typeflag == tar.TypeSymlink || h.Typeflag == tar.TypeLink:
			return nil, hostile("member %q is a link (to %q)", name, h.Linkname)
		case h.Typeflag != tar.TypeReg && h.Typeflag != tar.TypeRegA:
			return nil, hostile("member %q is not a regular file (type %q)", name, string(h.Typeflag))
		case seen[clean]:
			return nil, hostile("member %q appears twice", name)
		}
		seen[clean] = true
		ext := strings.ToLower(path.Ext(clean))
		switch {
		case ext == ".ovf" && out.OVF == nil:
			hs := newHashes()
			o, err := ParseOVF(io.TeeReader(tr, hs), archive+":"+clean)
			if err != nil {
				return nil, err
			}
			io.Copy(hs, tr)
			sums[clean] = hs.sums()
			out.OVF = o
			declared := int64(0)
			for _, d := range o.Disks {
				if d.File != path.Base(d.File) || d.File == ".." {
					return nil, hostile("the OVF names disk file %q outside the archive", d.File)
				}
				if !want[d.File] {
					declared = satAdd(declared, d.Size)
				}
				want[d.File] = true
				disks[d.File] = d
			}
			// The OVF says how much the disks take: refuse at once what
			// cannot fit rather than after extracting the first of them.
			if r, err := room.In(dir); err == nil && declared > r.Usable() {
				return nil, r.TooBig(archive, declared, fmt.Sprintf("extracting the disks of %s (the sizes its OVF declares)", path.Base(archive)))
			}
		case ext == ".mf":
			b, err := io.ReadAll(io.LimitReader(tr, 1<<20))
			if err != nil {
				return nil, fault.Wrap(fault.TruncatedImage, archive, err, "cannot read the manifest")
			}
			manifest = map[string][2]string{}
			for _, l := range strings.Split(string(b), "\n") {
				if l = strings.TrimSpace(l); l == "" {
					continue
				}
				m := mfLine.FindStringSubmatch(l)
				if m == nil {
					return nil, fault.New(fault.CorruptDescriptor, archive+":"+clean, "manifest line %q is not ALGO(file)= hex", l)
				}
				manifest[m[2]] = [2]string{m[1], strings.ToLower(m[3])}
			}
		case want[clean]:
			if err := checkBounds(archive, clean, h.Size, disks[clean]); err != nil {
				return nil, err
			}
			dst := filepath.Join(dir, clean)
			hs := newHashes()
			if err := extractMember(archive, clean, dst, h.Size, io.TeeReader(tr, hs)); err != nil {
				return nil, err
			}
			written = append(written, dst)
			sums[clean] = hs.sums()
		default:
			// Not needed (certificates, NVRAM, ISOs): skipped unread.
		}
	}
	if out.OVF == nil {
		return nil, fault.New(fault.UnsupportedFormat, archive, "the archive holds no .ovf descriptor").WithHint("Is this an OVA?")
	}
	for _, d := range out.OVF.Disks {
		if sums[d.File] == nil {
			return nil, hostile("the OVF names disk %q, which the archive does not hold", d.File)
		}
		out.Disks = append(out.Disks, filepath.Join(dir, d.File))
	}
	for member, m := range manifest {
		got, ok := sums[member]
		if !ok {
			if !seen[member] {
				return nil, hostile("the manifest lists %q, which the archive does not hold", member)
			}
			continue // present but not needed, so not read
		}
		if got[m[0]] != m[1] {
			return nil, fault.New(fault.ChecksumMismatch, archive, "%s of %q is %s; the manifest says %s", m[0], member, got[m[0]], m[1]).
				WithHint("The archive was altered or damaged after export. Nothing was kept.")
		}
		out.Verified = append(out.Verified, member)
	}
	return out, nil
}

// satAdd adds two sizes, stopping at the largest instead of wrapping.
func satAdd(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// MemberLabel names a member of an archive for diagnostics, the way the
// user knows it: by the archive they named, not the cache file it went to.
func MemberLabel(archive, member string) string { return archive + " member " + member }

// sparse reports a GNU (type 'S') or PAX (GNU.sparse.* records, formats
// 0.0, 0.1 and 1.0) sparse member: its header claims a size the archive
// need not hold, and Go's tar reader fills the holes with zeros.
func sparse(h *tar.Header) bool {
	if h.Typeflag == tar.TypeGNUSparse {
		return true
	}
	for k := range h.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

// capacitySlack is how much larger than its capacity a disk file may be:
// the format's metadata and, for a streamOptimized VMDK of incompressible
// data, a sector of marker and padding per 64 KiB grain (under 1%).
func capacitySlack(capacity int64) int64 { return capacity/8 + 64<<20 }

// checkBounds refuses a disk member larger than the OVF says it is.
func checkBounds(archive, member string, size int64, d OVFDisk) error {
	bad := func(format string, a ...any) error {
		return fault.New(fault.HostileArchive, MemberLabel(archive, member), format, a...).
			WithHint("The archive does not match its own OVF: it is damaged or crafted. Re-export the VM. Nothing was kept.").
			WithFact("Member size", fmt.Sprintf("%d bytes", size))
	}
	switch {
	case d.Size > 0 && size > d.Size:
		return bad("member %q holds %d bytes, but the OVF declares its file as %d bytes (ovf:size)", member, size, d.Size)
	case d.Capacity > 0 && size-d.Capacity > capacitySlack(d.Capacity):
		return bad("member %q holds %d bytes, more than a disk of %d bytes (the OVF's capacity) can take", member, size, d.Capacity)
	}
	return nil
}

// extractMember writes one disk member to dst, which it creates, after
// checking it fits. It removes dst again on failure.
func extractMember(archive, member, dst string, size int64, r io.Reader) (err error) {
	label := MemberLabel(archive, member)
	rm, err := room.In(filepath.Dir(dst))
	if err != nil {
		return fault.Wrap(fault.OutputNotWritable, filepath.Dir(dst), err, "cannot read the free space of the cache folder")
	}
	if size > rm.Usable() {
		return rm.TooBig(label, size, fmt.Sprintf("extracting %s", label))
	}
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fault.Wrap(fault.OutputNotWritable, dst, err, "cannot extract the disk")
	}
	defer func() {
		if err != nil {
			os.Remove(dst)
		}
	}()
	w := &room.Writer{W: f}
	// The tar reader stops at the header's size; the limit says so here.
	_, err = io.Copy(w, io.LimitReader(r, size))
	if cerr := f.Close(); err == nil {
		err, w.Err = cerr, cerr
	}
	switch {
	case err == nil:
		return nil
	case w.Err != nil && room.IsNoSpace(w.Err):
		return fault.Wrap(fault.NoSpace, label, w.Err, "the cache folder %s filled up while %s was extracted into it (%s were free before)", rm.Dir, label, room.Human(rm.Free)).
			WithHint("Something else is writing to that file system. Free space in %s, or set the provider's cache_dir to a folder on a larger file system, then apply again.", rm.Dir).
			WithFact("Cache folder", rm.Dir)
	case w.Err != nil:
		return fault.Wrap(fault.OutputNotWritable, dst, w.Err, "cannot extract the disk")
	}
	return fault.Wrap(fault.TruncatedImage, archive, err, "the OVA ends inside disk %q", member)
}

type hashes struct {
	hs map[string]hash.Hash
	w  io.Writer
}

func newHashes() *hashes {
	h := &hashes{hs: map[string]hash.Hash{"SHA1": sha1.New(), "SHA256": sha256.New(), "SHA512": sha512.New()}}
	h.w = io.MultiWriter(h.hs["SHA1"], h.hs["SHA256"], h.hs["SHA512"])
	return h
}

func (h *hashes) Write(p []byte) (int, error) { return h.w.Write(p) }

func (h *hashes) sums() map[string]string {
	out := map[string]string{}
	for k, v := range h.hs {
		out[k] = hex.EncodeToString(v.Sum(nil))
	}
	return out
}
