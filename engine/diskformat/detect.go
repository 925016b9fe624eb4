// Package diskformat identifies disk image formats from their content, never
// from the file name, and validates the headers of the single-file formats
// (qcow2, VHD, VHDX, VDI) far enough to refuse truncated, corrupt or
// unsupported images with a precise reason.
package diskformat

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"

	"github.com/vmconv/terraform-provider-vmconv/engine/vmdk"
)

// Format is a user-facing image format name.
type Format string

const (
	Raw   Format = "raw"
	QCOW2 Format = "qcow2"
	VMDK  Format = "vmdk"
	VHD   Format = "vhd"
	VHDX  Format = "vhdx"
	VDI   Format = "vdi"
)

// Inputs lists the formats vmconv reads.
var Inputs = []Format{VMDK, QCOW2, VHD, VHDX, VDI, Raw}

// Outputs lists the formats vmconv writes.
var Outputs = []Format{QCOW2, Raw, VDI, VHDX}

// QemuDriver is the qemu block driver name for a format.
func (f Format) QemuDriver() string {
	if f == VHD {
		return "vpc"
	}
	return string(f)
}

// Kind refines a format: which VMDK file this is, or which VHD variant.
type Kind string

const (
	KindDescriptor   Kind = "descriptor"    // VMDK text descriptor
	KindHostedSparse Kind = "hosted-sparse" // KDMV: monolithicSparse, streamOptimized or an extent
	KindCOWD         Kind = "vmfs-sparse-extent"
	KindSESparse     Kind = "sesparse-extent"
	KindWhole        Kind = "image" // any single-file format
)

// Detected is what the content says a file is.
type Detected struct {
	Format Format
	Kind   Kind
	// Evidence says what identified it, for messages and raw detection.
	Evidence string
}

// probeSize is how much of the file detection reads.
const probeSize = 68 * 1024

// Detect identifies the format of f from its content. It returns ok=false
// when nothing identifies the file: callers treat that as an unknown format
// unless the user declared it raw.
func Detect(f *os.File) (Detected, bool, error) {
	st, err := f.Stat()
	if err != nil {
		return Detected{}, false, err
	}
	return DetectReader(f, st.Size())
}

// DetectReader is Detect for a file of size bytes read through r.
func DetectReader(r io.ReaderAt, size int64) (Detected, bool, error) {
	if size < 0 {
		return Detected{}, false, fmt.Errorf("diskformat: negative file size %d", size)
	}
	buf := make([]byte, min(size, probeSize))
	if _, err := r.ReadAt(buf, 0); err != nil && err != io.EOF {
		return Detected{}, false, err
	}
	d, ok := detectBytes(buf, size, func(off int64, n int) []byte {
		if off < 0 || off > size || int64(n) > size-off {
			return nil
		}
		b := make([]byte, n)
		if _, err := r.ReadAt(b, off); err != nil {
			return nil
		}
		return b
	})
	return d, ok, nil
}

func at(buf []byte, off int, want []byte) bool {
	return len(buf) >= off+len(want) && bytes.Equal(buf[off:off+len(want)], want)
}

func detectBytes(buf []byte, size int64, readAt func(off int64, n int) []byte) (Detected, bool) {
	switch {
	case at(buf, 0, []byte("QFI\xfb")):
		return Detected{QCOW2, KindWhole, "qcow2 magic"}, true
	case at(buf, 0, vmdk.MagicKDMV):
		return Detected{VMDK, KindHostedSparse, "KDMV sparse header"}, true
	case at(buf, 0, vmdk.MagicCOWD):
		return Detected{VMDK, KindCOWD, "COWD header"}, true
	case at(buf, 0, vmdk.MagicSESparse):
		return Detected{VMDK, KindSESparse, "seSparse header"}, true
	case at(buf, 0, []byte("vhdxfile")):
		return Detected{VHDX, KindWhole, "vhdxfile signature"}, true
	case at(buf, 0x40, []byte{0x7f, 0x10, 0xda, 0xbe}):
		return Detected{VDI, KindWhole, "VDI signature"}, true
	case at(buf, 0, []byte("conectix")):
		return Detected{VHD, KindWhole, "VHD footer copy"}, true
	}
	if size >= 512 {
		if tail := readAt(size-512, 512); at(tail, 0, []byte("conectix")) {
			return Detected{VHD, KindWhole, "VHD footer"}, true
		}
	}
	if vmdk.LooksLikeDescriptor(buf) {
		return Detected{VMDK, KindDescriptor, "VMDK text descriptor"}, true
	}
	if ev := rawEvidence(buf, readAt); ev != "" {
		return Detected{Raw, KindWhole, ev}, true
	}
	return Detected{}, false
}

// rawEvidence names a partition table or file system found at the start of
// a disk, which is what makes a file recognisably a raw disk.
func rawEvidence(buf []byte, readAt func(off int64, n int) []byte) string {
	switch {
	case at(buf, 512, []byte("EFI PART")):
		return "GPT header"
	case at(buf, 510, []byte{0x55, 0xaa}):
		return "MBR boot signature"
	case at(buf, 512, []byte("LABELONE")) || at(buf, 0, []byte("LABELONE")):
		return "LVM physical volume label"
	case len(buf) >= 1082 && binary.LittleEndian.Uint16(buf[1080:]) == 0xef53:
		return "ext2/3/4 superblock"
	case at(buf, 0, []byte("XFSB")):
		return "XFS superblock"
	case at(buf, 3, []byte("NTFS    ")):
		return "NTFS boot sector"
	case at(buf, 4086, []byte("SWAPSPACE2")):
		return "Linux swap signature"
	case at(buf, 0, []byte("LUKS\xba\xbe")):
		return "LUKS header"
	}
	if b := readAt(0x10040, 8); at(b, 0, []byte("_BHRfS_M")) {
		return "btrfs superblock"
	}
	if b := readAt(0x8001, 5); at(b, 0, []byte("CD001")) {
		return "ISO 9660 volume descriptor"
	}
	return ""
}
