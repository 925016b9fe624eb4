package volume

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
)

// Target is where a volume is published.
type Target struct {
	Pool, Name string
	// Format is the image's format (raw, qcow2); the uploaded bytes must
	// probe as it.
	Format string
	// Replace allows replacing an existing volume by Name (it is the
	// caller's own, as its report says).
	Replace bool
}

// Published is a volume after Publish.
type Published struct {
	Info
	Stamp string
	// Sent is the bytes of data that crossed the connection.
	Sent int64
}

// Item is one image of a set: its volume's name and format, and the file.
type Item struct {
	Name, Format string
	Src          Source
}

// Publish uploads src as t.Name, with its report beside it.
func Publish(ctx context.Context, st Storage, t Target, src Source, publishing []byte, report func(Published) ([]byte, error), progress func(done, total int64)) (Published, error) {
	ps, err := PublishSet(ctx, st, t.Pool, t.Name, []Item{{t.Name, t.Format, src}}, t.Replace, publishing,
		func(ps []Published) ([]byte, error) { return report(ps[0]) }, progress)
	if err != nil {
		return Published{}, err
	}
	return ps[0], nil
}

// PublishSet uploads items into pool, each under a temporary name, and only
// when all are uploaded makes them their final names, with one report
// (ReportName(reportOf)) for the set. The report is written first as
// publishing, so a run killed after a swap leaves volumes vmconv
// recognises as its own; the final report, made by report from what was
// published, comes last. A Markdown report of an earlier publish goes with
// the publishing report, as it describes what is being replaced; the
// caller writes the new one (WriteMarkdown) after the final report.
func PublishSet(ctx context.Context, st Storage, pool, reportOf string, items []Item, replace bool, publishing []byte, report func([]Published) ([]byte, error), progress func(done, total int64)) ([]Published, error) {
	var total, done int64
	exts := make([][]Extent, len(items))
	for i, it := range items {
		if _, err := Sweep(st, pool, it.Name); err != nil {
			return nil, err
		}
		if _, ok, err := st.Volume(pool, it.Name); err != nil {
			return nil, fault.Wrap(fault.HypervisorFailed, "", err, "cannot look up volume %s/%s", pool, it.Name)
		} else if ok && !replace {
			return nil, fault.New(fault.OutputExists, "", "volume %s/%s already exists", pool, it.Name).
				WithHint("Choose another output.volume, or delete the volume (virsh vol-delete) if it is not needed. vmconv never replaces a volume it did not publish.")
		}
		e, err := it.Src.Extents()
		if err != nil {
			return nil, fault.Wrap(fault.Internal, "", err, "cannot map the converted image's data")
		}
		exts[i] = e
		total += DataBytes(e)
	}
	parts := make([]string, len(items))
	// sent is what each upload put on the connection, as the stream
	// counted it: holes are not in it.
	sent := make([]int64, len(items))
	defer func() {
		for _, p := range parts {
			if p != "" {
				st.Delete(pool, p)
			}
		}
	}()
	for i, it := range items {
		part := it.Name + partInfix + randomSuffix()
		if err := st.Create(pool, part, "raw", uint64(it.Src.Size())); err != nil {
			return nil, fault.Wrap(fault.HypervisorFailed, "", err, "cannot create a volume in pool %s", pool).
				WithHint("Check the pool's free space (virsh pool-info %s) and that it is a directory-like pool vmconv can upload into.", pool)
		}
		parts[i] = part
		base := done
		if err := st.Upload(ctx, pool, part, it.Src, func(n int64) {
			sent[i] = n
			if progress != nil {
				progress(base+n, total)
			}
		}); err != nil {
			if ctx.Err() != nil {
				return nil, fault.Wrap(fault.Cancelled, "", ctx.Err(), "the upload to %s/%s was cancelled", pool, it.Name)
			}
			return nil, fault.Wrap(fault.HypervisorFailed, "", err, "the upload to %s/%s failed", pool, it.Name)
		}
		done += DataBytes(exts[i])
	}
	if err := st.Refresh(ctx, pool); err != nil {
		return nil, fault.Wrap(fault.HypervisorFailed, "", err, "cannot refresh pool %s", pool)
	}
	for i, it := range items {
		pi, ok, err := st.Volume(pool, parts[i])
		if err != nil || !ok {
			return nil, fault.New(fault.HypervisorFailed, "", "the uploaded volume %s/%s disappeared", pool, parts[i])
		}
		if pi.Format != it.Format {
			return nil, fault.New(fault.HypervisorFailed, "", "libvirt reads the uploaded image %s as %s, not %s", it.Name, pi.Format, it.Format).
				WithHint("The pool must be one whose volumes are files libvirt probes (a dir or fs pool).")
		}
	}
	if err := WriteReport(ctx, st, pool, reportOf, publishing); err != nil {
		return nil, err
	}
	if err := st.Delete(pool, MarkdownName(reportOf)); err != nil {
		return nil, fault.Wrap(fault.HypervisorFailed, "", err, "cannot replace the Markdown report of %s/%s", pool, reportOf)
	}
	out := make([]Published, len(items))
	for i, it := range items {
		where := pool + "/" + it.Name
		if err := st.Delete(pool, it.Name); err != nil {
			return nil, fault.Wrap(fault.HypervisorFailed, "", err, "cannot remove the previous volume %s", where)
		}
		if err := st.Clone(pool, parts[i], it.Name, it.Format); err != nil {
			return nil, fault.Wrap(fault.HypervisorFailed, "", err, "the host could not publish volume %s", where)
		}
		st.Delete(pool, parts[i])
		parts[i] = ""
		info, ok, err := st.Volume(pool, it.Name)
		if err != nil || !ok {
			return nil, fault.New(fault.HypervisorFailed, "", "volume %s disappeared after it was published", where)
		}
		stamp, err := Stamp(ctx, st, info)
		if err != nil {
			return nil, err
		}
		out[i] = Published{Info: info, Stamp: stamp, Sent: sent[i]}
	}
	body, err := report(out)
	if err != nil {
		return out, err
	}
	return out, WriteReport(ctx, st, pool, reportOf, body)
}

func randomSuffix() string {
	b := make([]byte, 6)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Sweep removes the temporaries of volume left by killed runs.
func Sweep(st Storage, pool, volume string) ([]string, error) {
	vs, err := st.Volumes(pool)
	if err != nil {
		return nil, fault.Wrap(fault.HypervisorFailed, "", err, "cannot list the volumes of pool %s", pool)
	}
	var removed []string
	for _, v := range vs {
		if IsPart(v.Name, volume) && st.Delete(pool, v.Name) == nil {
			removed = append(removed, v.Name)
		}
	}
	return removed, nil
}

// WriteReport replaces volume's report. A report is a few kilobytes; a
// run killed while writing it leaves one that does not parse, which
// ReadReport tells from a missing one.
func WriteReport(ctx context.Context, st Storage, pool, volume string, body []byte) error {
	return writeSmall(ctx, st, pool, ReportName(volume), body, fmt.Sprintf("the report of %s/%s", pool, volume))
}

// WriteMarkdown replaces the Markdown summary of volume's report. Nothing
// reads it back, so one cut short by a killed run only waits for the next
// apply to rewrite it.
func WriteMarkdown(ctx context.Context, st Storage, pool, volume string, body []byte) error {
	return writeSmall(ctx, st, pool, MarkdownName(volume), body, fmt.Sprintf("the Markdown report of %s/%s", pool, volume))
}

// writeSmall replaces a volume of a few kilobytes in place: too small to
// be worth a temporary and a clone, and a reader copes with it cut short.
func writeSmall(ctx context.Context, st Storage, pool, name string, body []byte, what string) error {
	if err := st.Delete(pool, name); err != nil {
		return fault.Wrap(fault.HypervisorFailed, "", err, "cannot replace %s", what)
	}
	if err := st.Create(pool, name, "raw", uint64(len(body))); err != nil {
		return fault.Wrap(fault.HypervisorFailed, "", err, "cannot write %s", what)
	}
	if err := st.Upload(ctx, pool, name, bytesSource(body), nil); err != nil {
		return fault.Wrap(fault.HypervisorFailed, "", err, "cannot write %s", what)
	}
	return nil
}

// ReadReport reads volume's report; ok is false when there is none.
func ReadReport(ctx context.Context, st Storage, pool, volume string) ([]byte, bool, error) {
	info, ok, err := st.Volume(pool, ReportName(volume))
	if err != nil || !ok {
		return nil, false, err
	}
	b, err := st.Download(ctx, pool, info.Name, 0, int64(info.Physical))
	return b, err == nil, err
}

// Remove deletes published volumes, the reports of reportOf and their
// temporaries. The JSON report goes last: it marks what is left as
// vmconv's, so a run killed half way leaves nothing the next one would
// refuse as another's.
func Remove(st Storage, pool, reportOf string, volumes ...string) error {
	if len(volumes) == 0 {
		volumes = []string{reportOf}
	}
	for _, v := range volumes {
		if _, err := Sweep(st, pool, v); err != nil {
			return err
		}
	}
	for _, n := range append(volumes, MarkdownName(reportOf), ReportName(reportOf)) {
		if err := st.Delete(pool, n); err != nil {
			return fault.Wrap(fault.HypervisorFailed, "", err, "cannot delete volume %s/%s", pool, n)
		}
	}
	return nil
}

// Stamp summarises a volume for drift detection without reading it all:
// its format, sizes, and the bytes of its first MiB, its last 64 KiB and
// 14 samples between. A guest writing through the volume changes its
// allocation or its metadata (the first MiB of a qcow2); a byte changed in
// place elsewhere may go unseen, which is what a stamp trades for not
// downloading the image at every refresh.
func Stamp(ctx context.Context, st Storage, info Info) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%d\n%d\n", info.Format, info.Capacity, info.Physical)
	size := int64(info.Physical)
	var ranges [][2]int64
	ranges = append(ranges, [2]int64{0, min(size, 1<<20)})
	const sample = 64 << 10
	for i := int64(1); i <= 14 && size > 2<<20; i++ {
		ranges = append(ranges, [2]int64{size * i / 15 &^ 4095, sample})
	}
	if size > 1<<20 {
		ranges = append(ranges, [2]int64{max(1<<20, size-sample), min(sample, size-1<<20)})
	}
	for _, r := range ranges {
		b, err := st.Download(ctx, info.Pool, info.Name, r[0], r[1])
		if err != nil {
			return "", fault.Wrap(fault.HypervisorFailed, "", err, "cannot read volume %s/%s", info.Pool, info.Name)
		}
		binary.Write(h, binary.LittleEndian, r[0])
		h.Write(b)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

type bytesSource []byte

func (b bytesSource) Size() int64 { return int64(len(b)) }
func (b bytesSource) Extents() ([]Extent, error) {
	return []Extent{{0, int64(len(b)), true}}, nil
}
func (b bytesSource) ReadAt(p []byte, off int64) (int, error) { return copy(p, b[off:]), nil }

// Reader reads a volume's file through ranged downloads: every ReadAt is a
// round trip to the host, so callers cache (engine/nbd.NewCache).
type Reader struct {
	ctx        context.Context
	st         Storage
	pool, name string
	size       int64
}

// NewReader reads info's file, of info.Physical bytes.
func NewReader(ctx context.Context, st Storage, info Info) *Reader {
	return &Reader{ctx: ctx, st: st, pool: info.Pool, name: info.Name, size: int64(info.Physical)}
}

// Size is the file's length.
func (r *Reader) Size() int64 { return r.size }

func (r *Reader) ReadAt(p []byte, off int64) (int, error) {
	if off >= r.size {
		return 0, io.EOF
	}
	n := min(int64(len(p)), r.size-off)
	b, err := r.st.Download(r.ctx, r.pool, r.name, off, n)
	if err != nil {
		return 0, err
	}
	c := copy(p, b)
	if int64(c) < int64(len(p)) {
		return c, io.EOF
	}
	return c, nil
}
