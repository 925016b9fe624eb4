package vmdk

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/engine/internal/span"
)

// Bounds on the work a table check does. Real extents never come near
// them. docs: templates/resources/disk_conversion.md.tmpl.
const (
	// maxTableBytes bounds how much grain-table metadata a check reads:
	// 1 GiB covers 256M grains, 128 GiB written in a vmfsSparse delta's
	// 512-byte grains (and far more than any hosted sparse extent, whose
	// tables for 2 TiB take 128 MiB). Past it the rest is not checked,
	// which the header's Unchecked field reports.
	maxTableBytes = 1 << 30
	// maxRegions bounds the metadata structures (grain tables) a check
	// records to find overlaps; past it the check stops (Unchecked).
	maxRegions = 1 << 20
	// maxLoose bounds the grains recorded one by one: compressed grains and
	// grains not aligned with the others.
	maxLoose = 4 << 20
	// maxMapBytes bounds the bitmap of claimed grains.
	maxMapBytes = 64 << 20
)

const corruptHint = "The extent's metadata is damaged, so converting it would produce a wrong disk. " +
	"Copy it again from the original datastore; vmconv does not guess at damaged tables."

func corrupt(format string, args ...any) *fault.Error {
	return fault.New(fault.CorruptImage, "", format, args...).WithHint("%s", corruptHint)
}

// corruptAt names the structure and its offset, so the damage can be found.
func corruptAt(structure string, off int64, format string, args ...any) *fault.Error {
	e := corrupt(format, args...).WithFact("Structure", structure).WithFact("Offset", fmt.Sprintf("%d (%#x)", off, off))
	switch {
	case !strings.Contains(e.Msg, structure):
		e.Msg = fmt.Sprintf("%s (%s, at file offset %d)", e.Msg, structure, off)
	case !strings.Contains(e.Msg, fmt.Sprintf("at offset %d", off)):
		e.Msg = fmt.Sprintf("%s (%s is at file offset %d)", e.Msg, structure, off)
	}
	return e
}

func truncated(need, have int64, what string) *fault.Error {
	return fault.New(fault.TruncatedImage, "",
		"%s ends at byte %d but the file is only %d bytes long", what, need, have).
		WithHint("The file was cut short, typically by an interrupted copy or download. Copy it again from the original datastore and compare its size.").
		WithFact("Structure", what)
}

// inFile checks that [off, off+n) lies inside the file: an absurd range is
// corrupt, one past the end truncated.
func inFile(off, n, size int64, what string) error {
	end, ok := span.Within(off, n, size)
	if ok {
		return nil
	}
	if end >= span.MaxFile || off < 0 || n < 0 {
		return corruptAt(what, off, "%s at offset %d with length %d is beyond any file", what, off, n)
	}
	return truncated(end, size, what)
}

// sectors converts an on-disk sector number or count to bytes, refusing
// values no file can have.
func sectors(v uint64, what string, at int64) (int64, error) {
	s, ok := span.Int(v)
	if !ok {
		return 0, corruptAt(what, at, "%s of %d sectors is beyond any file", what, v)
	}
	b, ok := span.Mul(s, sector)
	if !ok {
		return 0, corruptAt(what, at, "%s of %d sectors is beyond any file", what, v)
	}
	return b, nil
}

func readErr(err error, what string, off int64) error {
	var re *span.ReadError
	if errors.As(err, &re) {
		err, off = re.Err, re.Off
	}
	if errors.Is(err, io.EOF) {
		return fault.Wrap(fault.TruncatedImage, "", err, "the file ended while reading %s at offset %d", what, off).WithFact("Structure", what)
	}
	return fault.Wrap(fault.SourceUnreadable, "", err, "cannot read %s at offset %d", what, off)
}

// region is a metadata structure: kind, and for tables an index (else -1),
// so that a million grain tables do not cost a million strings.
type region struct {
	kind   string
	idx    int64
	off, n int64
}

func (r region) what() string {
	if r.idx < 0 {
		return r.kind
	}
	return fmt.Sprintf("%s %d", r.kind, r.idx)
}

// layout records what an extent's tables claim of its file: metadata
// regions (header, descriptor, directories, tables) and grains, so that a
// grain pointing into metadata, two grains sharing bytes, or two tables
// sharing bytes are refused.
type layout struct {
	size       int64
	regions    []region
	sealed     bool
	grainBytes int64
	compressed bool
	// start is the lowest offset a grain may have (the metadata before the
	// first grain), when the header says it.
	start int64
	// Grains whose offset is a multiple of grainBytes from phase are
	// claimed on grains; others, and compressed grains (whose length is not
	// known without reading them), are recorded one by one in loose.
	phase  int64
	grains *span.Map
	loose  []int64
	// stopped is set when a bound was reached and the rest is not checked.
	stopped bool
	read    int64
}

func newLayout(size, grainBytes, phase int64, compressed bool) *layout {
	return &layout{size: size, grainBytes: grainBytes, compressed: compressed, phase: phase,
		grains: span.NewMap(grainBytes, phase, maxMapBytes)}
}

// meta records a metadata region that must lie inside the file.
func (l *layout) meta(r region) error {
	if err := inFile(r.off, r.n, l.size, r.what()); err != nil {
		return err
	}
	if len(l.regions) >= maxRegions {
		// Only a fully written 2 TiB vmfsSparse delta comes near; its
		// table reads stop long before (maxTableBytes).
		l.stopped = true
		return nil
	}
	l.regions = append(l.regions, r)
	return nil
}

// seal checks the metadata regions are pairwise apart; grains are checked
// against them from then on.
func (l *layout) seal() error {
	slices.SortFunc(l.regions, func(a, b region) int { return compare(a.off, b.off) })
	for i := 1; i < len(l.regions); i++ {
		a, b := l.regions[i-1], l.regions[i]
		if span.Overlap(a.off, a.n, b.off, b.n) {
			return corruptAt(b.what(), b.off, "%s at offset %d overlaps %s at offset %d", b.what(), b.off, a.what(), a.off)
		}
	}
	l.sealed = true
	return nil
}

func compare(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// readTable accounts for n bytes of tables about to be read and reports
// whether the check may go on.
func (l *layout) readTable(n int64) bool {
	l.read += n
	if l.read > maxTableBytes {
		l.stopped = true
	}
	return !l.stopped
}

// grain checks one allocated grain at off, named by the table entry at
// entryAt (described by where).
func (l *layout) grain(where string, entryAt, off int64) error {
	n := l.grainBytes
	if l.compressed {
		n = 12 // the grain marker: LBA and compressed size
	}
	if err := inFile(off, n, l.size, "the grain of "+where); err != nil {
		return err
	}
	if off < l.start {
		return corruptAt(where, entryAt, "%s points at offset %d, inside the header and tables before the first grain (which starts at %d)", where, off, l.start)
	}
	// The last region that starts before the grain ends is the only one it
	// can overlap, as regions are sorted and apart.
	if i, _ := slices.BinarySearchFunc(l.regions, off+n, func(r region, t int64) int { return compare(r.off, t) }); i > 0 {
		if r := l.regions[i-1]; span.Overlap(r.off, r.n, off, n) {
			return corruptAt(where, entryAt, "%s points at offset %d, inside %s at offset %d", where, off, r.what(), r.off)
		}
	}
	if !l.compressed && (off-l.phase)%l.grainBytes == 0 {
		if c := l.grains.Claim("", span.Data, off, n); c != nil {
			return corruptAt(where, entryAt, "%s points at the grain at offset %d, which another grain table entry already uses", where, off)
		}
		return nil
	}
	// More grains than the file can hold must overlap; refusing here also
	// bounds the list by the file's size.
	minGap := l.grainBytes
	if l.compressed {
		minGap = sector
	}
	if int64(len(l.loose)) >= l.size/minGap {
		return corruptAt(where, entryAt, "the grain tables name more grains than the %d-byte file can hold, so some overlap", l.size)
	}
	if len(l.loose) >= maxLoose {
		l.stopped = true
		return nil
	}
	l.loose = append(l.loose, off)
	return nil
}

// finish checks the grains recorded one by one: no two may overlap, and
// none may overlap a grain claimed on the map.
func (l *layout) finish() error {
	slices.Sort(l.loose)
	minGap := l.grainBytes
	if l.compressed {
		minGap = 1 // compressed grains only need distinct starts
	}
	for i, off := range l.loose {
		if i > 0 && off-l.loose[i-1] < minGap {
			return corruptAt("grain", off, "the grains at offsets %d and %d overlap", l.loose[i-1], off)
		}
		if !l.compressed {
			if c := l.grains.Query(off, l.grainBytes); c != nil {
				return corruptAt("grain", off, "the grain at offset %d overlaps the grain at offset %d", off, c.Offset)
			}
		}
	}
	return nil
}

// unchecked reports whether a bound stopped the check before the end of
// the tables.
func (l *layout) unchecked() bool { return l.stopped || l.grains.Full() }

// fmtGrain names the table entry of a grain for messages.
func fmtGrain(table, entry int64) string {
	return fmt.Sprintf("grain table %d entry %d", table, entry)
}
