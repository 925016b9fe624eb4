package diskformat

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"strings"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
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

func truncated(need, have int64, what string) *fault.Error {
	return fault.New(fault.TruncatedImage, "",
		"%s ends at byte %d but the file is only %d bytes long", what, need, have).
		WithHint("The file was cut short, typically by an interrupted copy or download. Copy it again and compare its size with the original.")
}

func corrupt(format string, args ...any) *fault.Error {
	return fault.New(fault.CorruptImage, "", format, args...)
}

func unsupported(hint, format string, args ...any) *fault.Error {
	return fault.New(fault.UnsupportedFormat, "", format, args...).WithHint("%s", hint)
}

func readFull(r io.ReaderAt, off int64, n int) ([]byte, error) {
	b := make([]byte, n)
	if _, err := r.ReadAt(b, off); err != nil {
		return nil, fault.Wrap(fault.SourceUnreadable, "", err, "cannot read %d bytes at offset %d", n, off)
	}
	return b, nil
}

// Inspect validates the header of a single-file image and checks that its
// allocation tables point inside the file.
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

func inspectQcow2(r io.ReaderAt, size int64) (*Info, error) {
	if size < 72 {
		return nil, truncated(72, size, "the qcow2 header")
	}
	h, err := readFull(r, 0, int(min(size, 4096)))
	if err != nil {
		return nil, err
	}
	be := binary.BigEndian
	version := be.Uint32(h[4:])
	if version != 2 && version != 3 {
		return nil, corrupt("unsupported qcow2 version %d", version)
	}
	backOff, backLen := be.Uint64(h[8:]), be.Uint32(h[16:])
	clusterBits := be.Uint32(h[20:])
	info := &Info{VirtualSize: int64(be.Uint64(h[24:]))}
	if clusterBits < 9 || clusterBits > 21 {
		return nil, corrupt("qcow2 cluster size 2^%d is out of range", clusterBits)
	}
	if be.Uint32(h[32:]) != 0 {
		return nil, unsupported("Decrypt the image with qemu-img convert --object secret,... first.", "the qcow2 image is encrypted")
	}
	l1Size, l1Off := int64(be.Uint32(h[36:])), int64(be.Uint64(h[40:]))
	hdrLen := uint32(72)
	if version == 3 {
		if len(h) < 104 {
			return nil, truncated(104, size, "the qcow2 v3 header")
		}
		incompat := be.Uint64(h[72:])
		if incompat&2 != 0 {
			return nil, corrupt("the qcow2 image is marked corrupt by qemu").
				WithHint("Run `qemu-img check -r all` on a copy of the image and convert the repaired copy.")
		}
		if incompat&4 != 0 {
			return nil, unsupported("Convert it to a self-contained image first.", "the qcow2 image keeps its data in an external file, which vmconv does not follow")
		}
		if incompat&^uint64(0x1f) != 0 {
			return nil, unsupported("Use a newer qemu-img to convert it first.", "the qcow2 image uses unknown incompatible features %#x", incompat)
		}
		if incompat&1 != 0 {
			info.Warnings = append(info.Warnings, "the qcow2 image was not closed cleanly (dirty bit); metadata may be stale")
		}
		hdrLen = be.Uint32(h[100:])
	}
	if l1End := l1Off + l1Size*8; l1End > size {
		return nil, truncated(l1End, size, "the qcow2 L1 table")
	}
	if backOff != 0 {
		if backLen == 0 || backLen > 1023 {
			return nil, corrupt("qcow2 backing file name length %d is invalid", backLen)
		}
		b, err := readFull(r, int64(backOff), int(backLen))
		if err != nil {
			return nil, err
		}
		info.Backing = string(b)
		if protocolPrefix(info.Backing) {
			return nil, unsupported("Convert the chain to a self-contained image first, or point the backing file at a local file.",
				"the qcow2 backing file %q is a qemu protocol or JSON specification, not a file", info.Backing)
		}
		// Header extensions follow the header; 0xe2792aca names the backing format.
		off := int(hdrLen)
		for off+8 <= len(h) {
			typ, l := be.Uint32(h[off:]), int(be.Uint32(h[off+4:]))
			if typ == 0 || off+8+l > len(h) {
				break
			}
			if typ == 0xe2792aca {
				info.BackingFormat = string(h[off+8 : off+8+l])
			}
			off += 8 + (l+7)&^7
		}
	}
	if err := checkQcow2Clusters(r, size, h, clusterBits, l1Off, l1Size); err != nil {
		return nil, err
	}
	return info, nil
}

// checkQcow2Clusters walks the L1 and L2 tables and verifies that every L2
// table and every allocated data cluster lies inside the file.
func checkQcow2Clusters(r io.ReaderAt, size int64, h []byte, clusterBits uint32, l1Off, l1Size int64) error {
	be := binary.BigEndian
	if l1Size == 0 {
		return nil
	}
	if l1Size > 32<<20 {
		return corrupt("qcow2 L1 table of %d entries is out of range", l1Size)
	}
	cluster := int64(1) << clusterBits
	entryBytes := int64(8)
	if be.Uint32(h[4:]) == 3 && be.Uint64(h[72:])&0x10 != 0 {
		entryBytes = 16 // extended L2 entries
	}
	l1, err := readFull(r, l1Off, int(l1Size*8))
	if err != nil {
		return err
	}
	const offMask = 0x00fffffffffffe00
	l2 := make([]byte, cluster)
	var read int64
	for i := int64(0); i < l1Size; i++ {
		l2Off := int64(be.Uint64(l1[i*8:]) & offMask)
		if l2Off == 0 {
			continue
		}
		if end := l2Off + cluster; end > size {
			return truncated(end, size, fmt.Sprintf("qcow2 L2 table %d", i))
		}
		if read += cluster; read > 256<<20 {
			return nil // metadata beyond what a plan-time check should read
		}
		if _, err := r.ReadAt(l2, l2Off); err != nil {
			return fault.Wrap(fault.SourceUnreadable, "", err, "cannot read qcow2 L2 table %d", i)
		}
		for j := int64(0); j+entryBytes <= cluster; j += entryBytes {
			e := be.Uint64(l2[j:])
			if e&(1<<62) != 0 { // compressed: offset in the low bits
				x := 62 - (clusterBits - 8)
				off := int64(e & (1<<x - 1))
				if off >= size {
					return truncated(off+1, size, "a compressed qcow2 cluster")
				}
				continue
			}
			off := int64(e & offMask)
			if off == 0 {
				continue
			}
			if end := off + cluster; end > size {
				return truncated(end, size, "a qcow2 data cluster")
			}
		}
	}
	return nil
}

// vhdChecksum is the ones' complement of the byte sum, skipping the field.
func vhdChecksum(b []byte, skipAt int) uint32 {
	var s uint32
	for i, c := range b {
		if i >= skipAt && i < skipAt+4 {
			continue
		}
		s += uint32(c)
	}
	return ^s
}

func inspectVHD(r io.ReaderAt, size int64) (*Info, error) {
	if size < 512 {
		return nil, truncated(512, size, "the VHD footer")
	}
	footer, err := readFull(r, size-512, 512)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(footer[:8], []byte("conectix")) {
		// Dynamic disks keep a copy at the start; if only that exists, the
		// end of the file is missing.
		head, err := readFull(r, 0, 512)
		if err == nil && bytes.Equal(head[:8], []byte("conectix")) {
			return nil, fault.New(fault.TruncatedImage, "", "the VHD has a header copy at its start but no footer at its end").
				WithHint("The file was cut short. Copy it again from the source.")
		}
		return nil, corrupt("the VHD footer signature is missing")
	}
	be := binary.BigEndian
	if want, got := vhdChecksum(footer, 64), be.Uint32(footer[64:]); want != got {
		return nil, corrupt("the VHD footer checksum is %08x, the footer's bytes give %08x", got, want)
	}
	info := &Info{VirtualSize: int64(be.Uint64(footer[48:]))}
	switch t := be.Uint32(footer[60:]); t {
	case 2: // fixed
		if need := info.VirtualSize + 512; need > size {
			return nil, truncated(need, size, "the fixed VHD's data")
		}
		return info, nil
	case 3: // dynamic
	case 4:
		return nil, unsupported("Merge the differencing disk into its parent in Hyper-V (Edit Disk > Merge) or with `qemu-img`-independent tools, then convert the merged VHD.",
			"the VHD is a differencing disk (it has a parent), which vmconv does not read")
	default:
		return nil, corrupt("unknown VHD disk type %d", t)
	}
	dynOff := int64(be.Uint64(footer[16:]))
	if dynOff <= 0 || dynOff+1024 > size {
		return nil, truncated(dynOff+1024, size, "the VHD dynamic header")
	}
	dyn, err := readFull(r, dynOff, 1024)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(dyn[:8], []byte("cxsparse")) {
		return nil, corrupt("the VHD dynamic header signature is missing")
	}
	batOff := int64(be.Uint64(dyn[16:]))
	entries := int64(be.Uint32(dyn[28:]))
	block := int64(be.Uint32(dyn[32:]))
	if block <= 0 || block%512 != 0 || block > 256<<20 {
		return nil, corrupt("VHD block size %d is invalid", block)
	}
	if entries > 32<<20 {
		return nil, corrupt("VHD block table of %d entries is out of range", entries)
	}
	if end := batOff + entries*4; end > size {
		return nil, truncated(end, size, "the VHD block allocation table")
	}
	bat, err := readFull(r, batOff, int(entries*4))
	if err != nil {
		return nil, err
	}
	bitmap := ((block/512+7)/8 + 511) / 512 * 512
	for i := int64(0); i < entries; i++ {
		s := be.Uint32(bat[i*4:])
		if s == 0xffffffff {
			continue
		}
		if end := int64(s)*512 + bitmap + block; end > size-512 {
			return nil, truncated(end+512, size, fmt.Sprintf("VHD block %d and the footer", i))
		}
	}
	return info, nil
}

func inspectVDI(r io.ReaderAt, size int64) (*Info, error) {
	if size < 512 {
		return nil, truncated(512, size, "the VDI header")
	}
	h, err := readFull(r, 0, 512)
	if err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	if ver := le.Uint32(h[0x44:]); ver>>16 != 1 {
		return nil, corrupt("unsupported VDI version %#x", ver)
	}
	imgType := le.Uint32(h[0x4c:])
	bmapOff := int64(le.Uint32(h[0x154:]))
	dataOff := int64(le.Uint32(h[0x158:]))
	info := &Info{VirtualSize: int64(le.Uint64(h[0x170:]))}
	block := int64(le.Uint32(h[0x178:]))
	blocks := int64(le.Uint32(h[0x180:]))
	if imgType == 4 || !bytes.Equal(h[0x1b8:0x1c8], make([]byte, 16)) {
		return nil, unsupported("Clone the disk into a standalone image in VirtualBox (VBoxManage clonemedium), then convert that.",
			"the VDI is a differencing image (it has a parent), which vmconv does not read")
	}
	if imgType != 1 && imgType != 2 {
		return nil, corrupt("unknown VDI image type %d", imgType)
	}
	if block <= 0 || block > 256<<20 || blocks > 32<<20 {
		return nil, corrupt("VDI geometry is invalid: %d blocks of %d bytes", blocks, block)
	}
	if end := bmapOff + blocks*4; end > size {
		return nil, truncated(end, size, "the VDI block map")
	}
	bmap, err := readFull(r, bmapOff, int(blocks*4))
	if err != nil {
		return nil, err
	}
	for i := int64(0); i < blocks; i++ {
		b := le.Uint32(bmap[i*4:])
		if b >= 0xfffffffe { // free or zero
			continue
		}
		if end := dataOff + (int64(b)+1)*block; end > size {
			return nil, truncated(end, size, fmt.Sprintf("VDI block %d", i))
		}
	}
	return info, nil
}

var (
	vhdxRegionBAT      = guid("2DC27766-F623-4200-9D64-115E9BFD4A08")
	vhdxRegionMetadata = guid("8B7CA206-4790-4B9A-B8FE-575F050F886E")
	vhdxFileParams     = guid("CAA16737-FA36-4D43-B3B6-33F0AA44E76B")
	vhdxVirtualSize    = guid("2FA54224-CD1B-4876-B211-5DBED83BF4B8")
	vhdxLogicalSector  = guid("8141BF1D-A96F-4709-BA47-F233A8FAAB5F")
)

// guid encodes a textual GUID in the mixed-endian form VHDX stores.
func guid(s string) []byte {
	s = strings.ReplaceAll(s, "-", "")
	var raw [16]byte
	for i := 0; i < 16; i++ {
		fmt.Sscanf(s[2*i:2*i+2], "%02x", &raw[i])
	}
	return []byte{raw[3], raw[2], raw[1], raw[0], raw[5], raw[4], raw[7], raw[6],
		raw[8], raw[9], raw[10], raw[11], raw[12], raw[13], raw[14], raw[15]}
}

func inspectVHDX(r io.ReaderAt, size int64) (*Info, error) {
	const mib = 1 << 20
	if size < mib {
		return nil, truncated(mib, size, "the VHDX headers and region tables")
	}
	le := binary.LittleEndian
	// Two headers at 64 KiB and 128 KiB; the one with the higher sequence
	// number is current. A non-zero log GUID means the log needs replaying.
	var cur []byte
	var seq uint64
	for _, off := range []int64{64 << 10, 128 << 10} {
		h, err := readFull(r, off, 4096)
		if err != nil {
			return nil, err
		}
		if bytes.Equal(h[:4], []byte("head")) && (cur == nil || le.Uint64(h[8:]) > seq) {
			cur, seq = h, le.Uint64(h[8:])
		}
	}
	if cur == nil {
		return nil, corrupt("neither VHDX header is valid")
	}
	if !bytes.Equal(cur[48:64], make([]byte, 16)) {
		return nil, unsupported("Mount and unmount the disk once in Hyper-V or Windows so the log is replayed, then convert it.",
			"the VHDX has an unreplayed log (it was not closed cleanly)")
	}
	rt, err := readFull(r, 192<<10, 64<<10)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(rt[:4], []byte("regi")) {
		return nil, corrupt("the VHDX region table signature is missing")
	}
	var batOff, batLen, metaOff int64
	n := int(le.Uint32(rt[8:]))
	if n > 2047 {
		return nil, corrupt("VHDX region table has %d entries", n)
	}
	for i := 0; i < n; i++ {
		e := rt[16+i*32 : 16+(i+1)*32]
		off, l := int64(le.Uint64(e[16:])), int64(le.Uint32(e[24:]))
		if end := off + l; end > size {
			return nil, truncated(end, size, "a VHDX region")
		}
		switch {
		case bytes.Equal(e[:16], vhdxRegionBAT):
			batOff, batLen = off, l
		case bytes.Equal(e[:16], vhdxRegionMetadata):
			metaOff = off
		}
	}
	if batOff == 0 || metaOff == 0 {
		return nil, corrupt("the VHDX region table lacks the BAT or metadata region")
	}
	meta, err := readFull(r, metaOff, 64<<10)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(meta[:8], []byte("metadata")) {
		return nil, corrupt("the VHDX metadata table signature is missing")
	}
	var blockSize, logical uint32
	var hasParent bool
	info := &Info{}
	count := int(le.Uint16(meta[10:]))
	for i := 0; i < count && 32+(i+1)*32 <= len(meta); i++ {
		e := meta[32+i*32 : 32+(i+1)*32]
		off := metaOff + int64(le.Uint32(e[16:]))
		l := int(le.Uint32(e[20:]))
		if l <= 0 || l > 64<<10 {
			continue
		}
		item, err := readFull(r, off, l)
		if err != nil {
			return nil, err
		}
		switch {
		case bytes.Equal(e[:16], vhdxFileParams) && l >= 8:
			blockSize = le.Uint32(item)
			hasParent = le.Uint32(item[4:])&2 != 0
		case bytes.Equal(e[:16], vhdxVirtualSize) && l >= 8:
			info.VirtualSize = int64(le.Uint64(item))
		case bytes.Equal(e[:16], vhdxLogicalSector) && l >= 4:
			logical = le.Uint32(item)
		}
	}
	if hasParent {
		return nil, unsupported("Merge the differencing disk in Hyper-V (Edit Disk > Merge), then convert the merged VHDX.",
			"the VHDX is a differencing disk (it has a parent), which vmconv does not read")
	}
	if blockSize < mib || blockSize > 256*mib || info.VirtualSize <= 0 || (logical != 512 && logical != 4096) {
		return nil, corrupt("VHDX metadata is invalid: block %d, size %d, sector %d", blockSize, info.VirtualSize, logical)
	}
	// BAT: payload entries interleaved with one sector-bitmap entry per chunk.
	chunk := int64(1<<23) * int64(logical) / int64(blockSize)
	payloads := (info.VirtualSize + int64(blockSize) - 1) / int64(blockSize)
	total := payloads + (payloads-1)/chunk
	if total*8 > batLen {
		return nil, corrupt("the VHDX BAT region is too small for the disk size")
	}
	bat, err := readFull(r, batOff, int(total*8))
	if err != nil {
		return nil, err
	}
	for i := int64(0); i < total; i++ {
		if (i+1)%(chunk+1) == 0 {
			continue // sector bitmap entry
		}
		e := le.Uint64(bat[i*8:])
		state := e & 7
		if state != 6 && state != 7 { // fully or partially present
			continue
		}
		off := int64(e>>20) * mib
		if end := off + int64(blockSize); end > size {
			return nil, truncated(end, size, fmt.Sprintf("VHDX payload block %d", i))
		}
	}
	return info, nil
}
