package fetch

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"hash"
	"io"
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
// name could land outside dir, a link, a duplicate, a disk the OVF names
// but the archive lacks, and a manifest checksum mismatch are refused, and
// what was extracted is removed.
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
			for _, d := range o.Disks {
				if d.File != path.Base(d.File) || d.File == ".." {
					return nil, hostile("the OVF names disk file %q outside the archive", d.File)
				}
				want[d.File] = true
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
			dst := filepath.Join(dir, clean)
			w, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
			if err != nil {
				return nil, fault.Wrap(fault.OutputNotWritable, dst, err, "cannot extract the disk")
			}
			written = append(written, dst)
			hs := newHashes()
			_, err = io.Copy(io.MultiWriter(w, hs), tr)
			if cerr := w.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return nil, fault.Wrap(fault.TruncatedImage, archive, err, "the OVA ends inside disk %q", clean)
			}
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
