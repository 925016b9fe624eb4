package diskformat

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/engine/internal/span"
)

// Bounds on what a header may declare. Real disks never come near them;
// they exist so that a hostile header cannot make a parser allocate, read
// or loop without limit. docs: templates/resources/disk_conversion.md.tmpl.
const (
	// MaxVirtualSize is the largest disk accepted: 64 TiB, the VHDX maximum
	// and above the largest VMDK (62 TiB).
	MaxVirtualSize = int64(64) << 40
	// maxAlloc bounds any single buffer a parser allocates.
	maxAlloc = 16 << 20
	// maxTableRead bounds how many bytes of allocation tables (qcow2 L2
	// tables, VHDX and VHD block tables, the VDI block map) one check reads.
	maxTableRead = 256 << 20
	// maxMapBytes bounds the bitmap that records which parts of a file the
	// image's structures claim.
	maxMapBytes = 64 << 20
)

// Info is what a single-file image header says.
type Info struct {
	VirtualSize int64
	// Backing is the qcow2 backing file name as written, if any.
	Backing string
	// BackingFormat is the qcow2 backing format extension, if present.
	BackingFormat string
	Warnings      []string
}

const corruptHint = "The image's metadata is damaged, so converting it would produce a wrong disk. " +
	"Restore the file from its original, or repair a copy with the tool that made it (for qcow2, VDI and VHDX: `qemu-img check -r all` on a copy) and convert the repaired copy."

func truncated(need, have int64, what string) *fault.Error {
	return fault.New(fault.TruncatedImage, "",
		"%s ends at byte %d but the file is only %d bytes long", what, need, have).
		WithHint("The file was cut short, typically by an interrupted copy or download. Copy it again and compare its size with the original.").
		WithFact("Structure", what)
}

func corrupt(format string, args ...any) *fault.Error {
	return fault.New(fault.CorruptImage, "", format, args...).WithHint("%s", corruptHint)
}

// corruptAt is a corrupt structure at a known offset: the diagnostic names
// both, so the damage can be found with a hex editor.
func corruptAt(structure string, off int64, format string, args ...any) *fault.Error {
	e := corrupt(format, args...).WithFact("Structure", structure).WithFact("Offset", offsetText(off))
	e.Msg = nameSite(e.Msg, structure, off)
	return e
}

// nameSite makes sure a message names the structure and where it is.
func nameSite(msg, structure string, off int64) string {
	switch {
	case !strings.Contains(msg, structure):
		return fmt.Sprintf("%s (%s, at file offset %d)", msg, structure, off)
	case !strings.Contains(msg, fmt.Sprintf("at offset %d", off)):
		return fmt.Sprintf("%s (%s is at file offset %d)", msg, structure, off)
	}
	return msg
}

func offsetText(off int64) string { return fmt.Sprintf("%d (%#x)", off, off) }

// overlaps reports a structure that claims bytes something else already
// claims.
func overlaps(structure string, off int64, c *span.Conflict) *fault.Error {
	return corruptAt(structure, off, "%s at offset %d overlaps %s at offset %d", structure, off, c.With, c.Offset)
}

func unsupported(hint, format string, args ...any) *fault.Error {
	return fault.New(fault.UnsupportedFormat, "", format, args...).WithHint("%s", hint)
}

// inFile checks that [off, off+n) lies inside the file, refusing an offset
// that is negative or absurd as corrupt and one past the end as truncated.
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

// readFull reads n bytes at off. Callers bound n and check the range with
// inFile first; a short read is then a file that shrank under us.
func readFull(r io.ReaderAt, off int64, n int) ([]byte, error) {
	if n < 0 || n > maxAlloc {
		return nil, fault.New(fault.Internal, "", "diskformat: refusing to read %d bytes at once", n)
	}
	b := make([]byte, n)
	if _, err := r.ReadAt(b, off); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fault.Wrap(fault.TruncatedImage, "", err, "the file ended while reading %d bytes at offset %d", n, off)
		}
		return nil, fault.Wrap(fault.SourceUnreadable, "", err, "cannot read %d bytes at offset %d", n, off)
	}
	return b, nil
}

// scanTable reads a table whose range was checked with inFile, entry by
// entry, classifying a failed read.
func scanTable(r io.ReaderAt, off, count int64, entrySize int, fn func(i int64, e []byte) error) error {
	err := span.Scan(r, off, count, entrySize, fn)
	var re *span.ReadError
	if errors.As(err, &re) {
		return readErr(re.Err, "a table", re.Off)
	}
	return err
}

// checkVirtualSize refuses a declared disk size that is empty, negative or
// beyond MaxVirtualSize.
func checkVirtualSize(format string, raw uint64, at int64) (int64, error) {
	if raw == 0 {
		return 0, corruptAt(format+" virtual size", at, "the %s header declares a disk of 0 bytes", format)
	}
	if raw > uint64(MaxVirtualSize) {
		return 0, corruptAt(format+" virtual size", at, "the %s header declares a disk of %d bytes, beyond the %d TiB any real disk has", format, raw, MaxVirtualSize>>40)
	}
	return int64(raw), nil
}

// Inspect validates the header of a single-file image and checks that its
// allocation tables point inside the file and at no byte twice.
func Inspect(f Format, r io.ReaderAt, size int64) (*Info, error) {
	switch f {
	case QCOW2:
		return inspectQcow2(r, size)
	case VHD:
		return inspectVHD(r, size)
	case VHDX:
		return inspectVHDX(r, size)
	case VDI:
		return inspectVDI(r, size)
	case Raw:
		if size == 0 {
			return nil, fault.New(fault.TruncatedImage, "", "the file is empty (0 bytes); as a raw disk it would convert to a disk with nothing on it").
				WithHint("An empty file is the trace of a copy or download that never happened, or the wrong file. Check source.path and copy the disk again.").
				WithFact("Structure", "raw disk").WithFact("Size", "0 bytes")
		}
		if size > MaxVirtualSize {
			return nil, corruptAt("raw disk", 0, "the raw disk is %d bytes, beyond the %d TiB any real disk has", size, MaxVirtualSize>>40)
		}
		return &Info{VirtualSize: size}, nil
	}
	return nil, fmt.Errorf("diskformat: Inspect does not handle %s", f)
}

// protocolPrefix reports whether a backing name is a qemu protocol spec
// (json:, nbd:, http: ...) rather than a file name.
func protocolPrefix(name string) bool {
	colon := strings.IndexByte(name, ':')
	if colon <= 0 {
		return false
	}
	slash := strings.IndexByte(name, '/')
	return slash < 0 || colon < slash
}

// readErr classifies a failed read of a structure whose range was checked.
func readErr(err error, what string, off int64) error {
	if errors.Is(err, io.EOF) {
		return fault.Wrap(fault.TruncatedImage, "", err, "the file ended while reading %s at offset %d", what, off).WithFact("Structure", what)
	}
	return fault.Wrap(fault.SourceUnreadable, "", err, "cannot read %s at offset %d", what, off)
}
