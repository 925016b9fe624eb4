// Package volume publishes converted images as volumes of a libvirt storage
// pool, through libvirt's API only: the runner never sees the host's file
// system. An image is uploaded through a stream with its holes kept, under
// a temporary name, and then cloned by the host into its final name, which
// libvirt keeps unusable until the clone is complete and removes if it
// fails, so a volume by the final name is never half there. A report volume
// beside it says what vmconv published (with a Markdown summary beside
// that, for people), and a stamp of sampled bytes lets Read see a volume
// changed out of band.
//
// The libvirt binding (cgo) implements Storage in engine/internal/libvirt.
package volume

import (
	"context"
	"strings"
)

// Info is a volume as libvirt has it.
type Info struct {
	Pool, Name string
	// Path is the volume's file on the host: shown, never opened here.
	Path   string
	Format string
	// Capacity is the guest-visible size; Allocation what the host
	// stores; Physical the file's length.
	Capacity, Allocation, Physical uint64
}

// PoolInfo is an active storage pool.
type PoolInfo struct {
	Name, Type, Path string
	Available        uint64
}

// Extent is a run of a local file: data, or a hole.
type Extent struct {
	Offset, Length int64
	Data           bool
}

// Storage is what publishing needs from libvirt.
type Storage interface {
	// Pool looks up an active pool by name.
	Pool(name string) (PoolInfo, error)
	// Volume looks up a volume; ok is false if there is none.
	Volume(pool, name string) (info Info, ok bool, err error)
	// Volumes lists a pool's volumes.
	Volumes(pool string) ([]Info, error)
	// Create makes an empty volume of the given format and capacity.
	Create(pool, name, format string, capacity uint64) error
	// Upload writes src into the volume from offset 0, sending holes as
	// holes. progress is called with the bytes sent so far.
	Upload(ctx context.Context, pool, name string, src Source, progress func(done int64)) error
	// Clone makes to, of format, from from: the host copies it.
	Clone(pool, from, to, format string) error
	// Delete removes a volume; a missing one is not an error.
	Delete(pool, name string) error
	// Download reads n bytes of the volume's file at off.
	Download(ctx context.Context, pool, name string, off, n int64) ([]byte, error)
	// Refresh rescans the pool, which makes libvirt probe uploaded
	// volumes' formats. libvirt refuses it while any upload or clone runs
	// in the pool; Refresh waits for them, until ctx ends.
	Refresh(ctx context.Context, pool string) error
}

// Source is a local file to upload: its extents and their bytes.
type Source interface {
	Size() int64
	Extents() ([]Extent, error)
	ReadAt(p []byte, off int64) (int, error)
}

// partInfix marks temporary volumes: "<name>.vmconv-part-<random>".
const partInfix = ".vmconv-part-"

// ReportSuffix names a published volume's report: "<name>.vmconv.json".
const ReportSuffix = ".vmconv.json"

// ReportName is the report volume of volume name.
func ReportName(name string) string { return name + ReportSuffix }

// MarkdownSuffix names the Markdown summary of a published volume's
// report: "<name>.vmconv.md". The JSON report alone marks the volume as
// vmconv's; the summary is for people and is never read back.
const MarkdownSuffix = ".vmconv.md"

// MarkdownName is the Markdown report volume of volume name.
func MarkdownName(name string) string { return name + MarkdownSuffix }

// IsPart says whether name is a temporary of volume (or of any volume,
// with volume empty).
func IsPart(name, volume string) bool {
	i := strings.Index(name, partInfix)
	return i > 0 && (volume == "" || name[:i] == volume)
}

// IsReport says whether name is a report volume, JSON or Markdown: names
// no output may take, as publishing it would overwrite another's report.
func IsReport(name string) bool {
	return strings.HasSuffix(name, ReportSuffix) || strings.HasSuffix(name, MarkdownSuffix)
}
