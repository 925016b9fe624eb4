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

// Publish uploads src as t.Name. The report of the new volume is written
// first as "publishing" (so a run killed after the swap leaves a volume
// vmconv recognises as its own), then the volume, then the final report
// made by report from what was published.
func Publish(ctx context.Context, st Storage, t Target, src Source, publishing []byte, report func(Published) ([]byte, error), progress func(done, total int64)) (Published, error) {
	where := t.Pool + "/" + t.Name
	if _, err := Sweep(st, t.Pool, t.Name); err != nil {
		return Published{}, err
	}
	if _, ok, err := st.Volume(t.Pool, t.Name); err != nil {
		return Published{}, fault.Wrap(fault.HypervisorFailed, "", err, "cannot look up volume %s", where)
	} else if ok && !t.Replace {
		return Published{}, fault.New(fault.OutputExists, "", "volume %s already exists", where).
			WithHint("Choose another output.volume, or delete the volume (virsh vol-delete) if it is not needed. vmconv never replaces a volume it did not publish.")
	}
	ext, err := src.Extents()
	if err != nil {
		return Published{}, fault.Wrap(fault.Internal, "", err, "cannot map the converted image's data")
	}
	total := DataBytes(ext)
	part := t.Name + partInfix + randomSuffix()
	if err := st.Create(t.Pool, part, "raw", uint64(src.Size())); err != nil {
		return Published{}, fault.Wrap(fault.HypervisorFailed, "", err, "cannot create a volume in pool %s", t.Pool).
			WithHint("Check the pool's free space (virsh pool-info %s) and that it is a directory-like pool vmconv can upload into.", t.Pool)
	}
	published := false
	defer func() {
		if !published {
			st.Delete(t.Pool, part)
		}
	}()
	if err := st.Upload(ctx, t.Pool, part, src, func(done int64) {
		if progress != nil {
			progress(done, total)
		}
	}); err != nil {
		if ctx.Err() != nil {
			return Published{}, fault.Wrap(fault.Cancelled, "", ctx.Err(), "the upload to %s was cancelled", where)
		}
		return Published{}, fault.Wrap(fault.HypervisorFailed, "", err, "the upload to %s failed", where)
	}
	if err := st.Refresh(t.Pool); err != nil {
		return Published{}, fault.Wrap(fault.HypervisorFailed, "", err, "cannot refresh pool %s", t.Pool)
	}
	pi, ok, err := st.Volume(t.Pool, part)
	if err != nil || !ok {
		return Published{}, fault.New(fault.HypervisorFailed, "", "the uploaded volume %s/%s disappeared", t.Pool, part)
	}
	if pi.Format != t.Format {
		return Published{}, fault.New(fault.HypervisorFailed, "", "libvirt reads the uploaded image as %s, not %s", pi.Format, t.Format).
			WithHint("The pool must be one whose volumes are files libvirt probes (a dir or fs pool).")
	}
	if err := writeReport(ctx, st, t.Pool, t.Name, publishing); err != nil {
		return Published{}, err
	}
	if err := st.Delete(t.Pool, t.Name); err != nil {
		return Published{}, fault.Wrap(fault.HypervisorFailed, "", err, "cannot remove the previous volume %s", where)
	}
	if err := st.Clone(t.Pool, part, t.Name, t.Format); err != nil {
		return Published{}, fault.Wrap(fault.HypervisorFailed, "", err, "the host could not publish volume %s", where)
	}
	st.Delete(t.Pool, part)
	published = true
	info, ok, err := st.Volume(t.Pool, t.Name)
	if err != nil || !ok {
		return Published{}, fault.New(fault.HypervisorFailed, "", "volume %s disappeared after it was published", where)
	}
	stamp, err := Stamp(ctx, st, info)
	if err != nil {
		return Published{}, err
	}
	p := Published{Info: info, Stamp: stamp, Sent: total}
	body, err := report(p)
	if err != nil {
		return p, err
	}
	return p, writeReport(ctx, st, t.Pool, t.Name, body)
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

// writeReport replaces volume's report. A report is a few kilobytes; a
// run killed while writing it leaves one that does not parse, which
// ReadReport tells from a missing one.
func writeReport(ctx context.Context, st Storage, pool, volume string, body []byte) error {
	name := ReportName(volume)
	if err := st.Delete(pool, name); err != nil {
		return fault.Wrap(fault.HypervisorFailed, "", err, "cannot replace the report of %s/%s", pool, volume)
	}
	if err := st.Create(pool, name, "raw", uint64(len(body))); err != nil {
		return fault.Wrap(fault.HypervisorFailed, "", err, "cannot write the report of %s/%s", pool, volume)
	}
	if err := st.Upload(ctx, pool, name, bytesSource(body), nil); err != nil {
		return fault.Wrap(fault.HypervisorFailed, "", err, "cannot write the report of %s/%s", pool, volume)
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

// Remove deletes a published volume, its report and its temporaries.
func Remove(st Storage, pool, volume string) error {
	if _, err := Sweep(st, pool, volume); err != nil {
		return err
	}
	for _, n := range []string{volume, ReportName(volume)} {
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
