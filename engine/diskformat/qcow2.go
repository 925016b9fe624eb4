package diskformat

import (
	"encoding/binary"
	"fmt"
	"io"

	"github.com/vmconv/terraform-provider-vmconv/engine/internal/span"
)

// qcow2 limits, as qemu's (block/qcow2.h): tables larger than these are
// refused by qemu itself.
const (
	qcow2MaxL1Bytes       = 32 << 20
	qcow2MaxRefTableBytes = 8 << 20
	qcow2MaxSnapshots     = 65536
	qcow2MaxSnapshotBytes = 64 << 20
	qcow2MaxExtraData     = 1024

	qcow2OffMask     = 0x00fffffffffffe00 // L1 and L2 entry offsets
	qcow2RefOffMask  = 0xfffffffffffffe00 // refcount table entry offsets
	qcow2Compressed  = 1 << 62
	qcow2ExtBackFmt  = 0xe2792aca
	qcow2IncompatAll = 0x1f
)

// qcow2Header is the part of the header the checks use.
type qcow2Header struct {
	version, clusterBits   uint32
	cluster                int64
	virtualSize            int64
	l1Size, l1Off          int64
	rtOff, rtBytes         int64
	nbSnapshots, snapOff   int64
	incompat               uint64
	hdrLen                 int64
	backOff                int64
	extendedL2             bool
	refcountOrder          uint32
	raw                    []byte
	warnings               []string
	backing, backingFormat string
	// skippedTables is set when the L2 tables exceed what a plan reads.
	skippedTables bool
	claims        *span.Map
}

func inspectQcow2(r io.ReaderAt, size int64) (*Info, error) {
	h, err := readQcow2Header(r, size)
	if err != nil {
		return nil, err
	}
	if err := h.checkTables(r, size); err != nil {
		return nil, err
	}
	info := &Info{VirtualSize: h.virtualSize, Backing: h.backing, BackingFormat: h.backingFormat, Warnings: h.warnings}
	if h.skippedTables || h.claims.Full() {
		info.Warnings = append(info.Warnings, fmt.Sprintf(
			"the qcow2 tables are larger than the %d MiB the plan reads; the rest is left to qemu-img check", maxTableRead>>20))
	}
	return info, nil
}

func readQcow2Header(r io.ReaderAt, size int64) (*qcow2Header, error) {
	if size < 72 {
		return nil, truncated(72, size, "the qcow2 header")
	}
	b, err := readFull(r, 0, int(min(size, 64<<10)))
	if err != nil {
		return nil, err
	}
	be := binary.BigEndian
	h := &qcow2Header{raw: b, version: be.Uint32(b[4:]), clusterBits: be.Uint32(b[20:])}
	if h.version != 2 && h.version != 3 {
		return nil, corruptAt("qcow2 header", 4, "unsupported qcow2 version %d", h.version)
	}
	if h.clusterBits < 9 || h.clusterBits > 21 {
		return nil, corruptAt("qcow2 header", 20, "qcow2 cluster size 2^%d is out of range (2^9 to 2^21)", h.clusterBits)
	}
	h.cluster = int64(1) << h.clusterBits
	if h.virtualSize, err = checkVirtualSize("qcow2", be.Uint64(b[24:]), 24); err != nil {
		return nil, err
	}
	if be.Uint32(b[32:]) != 0 {
		return nil, unsupported("Decrypt the image with qemu-img convert --object secret,... first.", "the qcow2 image is encrypted")
	}
	h.hdrLen, h.refcountOrder = 72, 4
	if h.version == 3 {
		if len(b) < 104 {
			return nil, truncated(104, size, "the qcow2 v3 header")
		}
		h.incompat = be.Uint64(b[72:])
		if h.incompat&2 != 0 {
			return nil, corruptAt("qcow2 header", 72, "the qcow2 image is marked corrupt by qemu (incompatible feature bit 1)").
				WithHint("Run `qemu-img check -r all` on a copy of the image and convert the repaired copy.")
		}
		if h.incompat&4 != 0 {
			return nil, unsupported("Convert it to a self-contained image first.", "the qcow2 image keeps its data in an external file, which vmconv does not follow")
		}
		if h.incompat&^uint64(qcow2IncompatAll) != 0 {
			return nil, unsupported("Use a newer qemu-img to convert it first.", "the qcow2 image uses unknown incompatible features %#x", h.incompat)
		}
		if h.incompat&1 != 0 {
			h.warnings = append(h.warnings, "the qcow2 image was not closed cleanly (dirty bit); metadata may be stale")
		}
		h.extendedL2 = h.incompat&0x10 != 0
		h.refcountOrder = be.Uint32(b[96:])
		h.hdrLen = int64(be.Uint32(b[100:]))
		if h.hdrLen < 104 || h.hdrLen > h.cluster || h.hdrLen > int64(len(b)) {
			return nil, corruptAt("qcow2 header", 100, "the qcow2 header length %d is outside 104 to the cluster size %d", h.hdrLen, h.cluster)
		}
	}
	if h.refcountOrder > 6 {
		return nil, corruptAt("qcow2 header", 96, "qcow2 refcount order %d is out of range (0 to 6)", h.refcountOrder)
	}
	if err := h.readL1Geometry(size); err != nil {
		return nil, err
	}
	if err := h.readBacking(r, size); err != nil {
		return nil, err
	}
	if err := h.readExtensions(); err != nil {
		return nil, err
	}
	return h, nil
}

// readL1Geometry checks where the L1 table, refcount table and snapshot
// table lie, and that the L1 table covers the virtual size.
func (h *qcow2Header) readL1Geometry(size int64) error {
	be, b := binary.BigEndian, h.raw
	h.l1Size = int64(be.Uint32(b[36:]))
	if h.l1Size > qcow2MaxL1Bytes/8 {
		return corruptAt("qcow2 L1 table", 36, "the qcow2 L1 table of %d entries is larger than qemu allows (%d)", h.l1Size, qcow2MaxL1Bytes/8)
	}
	var ok bool
	if h.l1Off, ok = span.Int(be.Uint64(b[40:])); !ok || h.l1Off%h.cluster != 0 {
		return corruptAt("qcow2 L1 table", 40, "the qcow2 L1 table offset %#x is not a cluster boundary inside a file", be.Uint64(b[40:]))
	}
	entryBytes := int64(8)
	if h.extendedL2 {
		entryBytes = 16
	}
	perL1 := (h.cluster / entryBytes) * h.cluster // guest bytes one L1 entry maps
	if need := (h.virtualSize + perL1 - 1) / perL1; h.l1Size < need {
		return corruptAt("qcow2 L1 table", 36, "the qcow2 L1 table has %d entries but a %d-byte disk needs %d", h.l1Size, h.virtualSize, need)
	}
	if err := inFile(h.l1Off, h.l1Size*8, size, "the qcow2 L1 table"); err != nil {
		return err
	}
	if h.rtOff, ok = span.Int(be.Uint64(b[48:])); !ok || h.rtOff%h.cluster != 0 || h.rtOff == 0 {
		return corruptAt("qcow2 refcount table", 48, "the qcow2 refcount table offset %#x is not a cluster boundary after the header", be.Uint64(b[48:]))
	}
	rtClusters := int64(be.Uint32(b[56:]))
	if rtClusters == 0 || rtClusters > qcow2MaxRefTableBytes/h.cluster {
		return corruptAt("qcow2 refcount table", 56, "the qcow2 refcount table of %d clusters is empty or larger than qemu allows (%d bytes)", rtClusters, qcow2MaxRefTableBytes)
	}
	h.rtBytes = rtClusters * h.cluster
	if err := inFile(h.rtOff, h.rtBytes, size, "the qcow2 refcount table"); err != nil {
		return err
	}
	h.nbSnapshots = int64(be.Uint32(b[60:]))
	if h.nbSnapshots > qcow2MaxSnapshots {
		return corruptAt("qcow2 snapshot table", 60, "the qcow2 image lists %d internal snapshots, more than qemu allows (%d)", h.nbSnapshots, qcow2MaxSnapshots)
	}
	if h.snapOff, ok = span.Int(be.Uint64(b[64:])); h.nbSnapshots > 0 && (!ok || h.snapOff%h.cluster != 0 || h.snapOff == 0) {
		return corruptAt("qcow2 snapshot table", 64, "the qcow2 snapshot table offset %#x is not a cluster boundary after the header", be.Uint64(b[64:]))
	}
	return nil
}

func (h *qcow2Header) readBacking(r io.ReaderAt, size int64) error {
	be := binary.BigEndian
	backOff, backLen := be.Uint64(h.raw[8:]), int64(be.Uint32(h.raw[16:]))
	if backOff == 0 {
		return nil
	}
	// qemu keeps the name in the first cluster and refuses it elsewhere.
	if backOff > uint64(h.cluster) || backOff < uint64(h.hdrLen) {
		return corruptAt("qcow2 backing file name", 8, "the qcow2 backing file name offset %#x is outside the header cluster", backOff)
	}
	if backLen == 0 || backLen > 1023 {
		return corruptAt("qcow2 backing file name", 16, "qcow2 backing file name length %d is invalid", backLen)
	}
	h.backOff = int64(backOff)
	if err := inFile(h.backOff, backLen, size, "the qcow2 backing file name"); err != nil {
		return err
	}
	name, err := readFull(r, h.backOff, int(backLen))
	if err != nil {
		return err
	}
	h.backing = string(name)
	if protocolPrefix(h.backing) {
		return unsupported("Convert the chain to a self-contained image first, or point the backing file at a local file.",
			"the qcow2 backing file %q is a qemu protocol or JSON specification, not a file", h.backing)
	}
	return nil
}

// readExtensions walks the header extensions between the header and the
// backing file name (or the end of the first cluster), as qemu does.
func (h *qcow2Header) readExtensions() error {
	be := binary.BigEndian
	end := min(int64(len(h.raw)), h.cluster)
	if h.backOff != 0 {
		end = min(end, h.backOff)
	}
	for off := h.hdrLen; off+8 <= end; {
		typ, l := be.Uint32(h.raw[off:]), int64(be.Uint32(h.raw[off+4:]))
		if typ == 0 {
			return nil
		}
		if l > end-off-8 {
			return corruptAt("qcow2 header extension", off, "the qcow2 header extension %#x at offset %d is %d bytes long, past the end of the header area", typ, off, l)
		}
		if typ == qcow2ExtBackFmt {
			h.backingFormat = string(h.raw[off+8 : off+8+l])
		}
		off += 8 + (l+7)&^7
	}
	return nil
}

// checkTables checks every table the image has: it claims, on a map of the
// file's clusters, the header, the L1, refcount and snapshot tables, each
// refcount block and L2 table, and each data cluster, so that anything two
// structures share, or anything outside the file, is refused.
func (h *qcow2Header) checkTables(r io.ReaderAt, size int64) error {
	h.claims = span.NewMap(h.cluster, 0, maxMapBytes)
	meta := func(what string, off, n int64) error {
		if c := h.claims.Claim(what, span.Meta, off, n); c != nil {
			return overlaps(what, off, c)
		}
		return nil
	}
	if err := meta("the qcow2 header", 0, h.cluster); err != nil {
		return err
	}
	if err := meta("the qcow2 L1 table", h.l1Off, h.l1Size*8); err != nil {
		return err
	}
	if err := meta("the qcow2 refcount table", h.rtOff, h.rtBytes); err != nil {
		return err
	}
	if err := h.checkSnapshots(r, size, meta); err != nil {
		return err
	}
	if err := h.checkRefcountBlocks(r, size, meta); err != nil {
		return err
	}
	return h.checkL2(r, size, meta)
}

func (h *qcow2Header) checkRefcountBlocks(r io.ReaderAt, size int64, meta func(string, int64, int64) error) error {
	return scanTable(r, h.rtOff, h.rtBytes/8, 8, func(i int64, e []byte) error {
		v := binary.BigEndian.Uint64(e)
		at := h.rtOff + i*8
		if v&^qcow2RefOffMask != 0 {
			return corruptAt("qcow2 refcount table", at, "qcow2 refcount table entry %d (%#x) has reserved bits set", i, v)
		}
		off, ok := span.Int(v)
		if v == 0 {
			return nil
		}
		what := fmt.Sprintf("qcow2 refcount block %d", i)
		if !ok || off%h.cluster != 0 {
			return corruptAt("qcow2 refcount table", at, "qcow2 refcount table entry %d points at %#x, not a cluster boundary", i, v)
		}
		if err := inFile(off, h.cluster, size, what); err != nil {
			return err
		}
		return meta(what, off, h.cluster)
	})
}

// checkSnapshots walks the internal snapshot table: each entry and each
// snapshot's L1 table must lie inside the file and apart from the rest.
// Snapshots' L2 tables and data are shared with the active disk by design,
// so they are left to qemu-img check.
func (h *qcow2Header) checkSnapshots(r io.ReaderAt, size int64, meta func(string, int64, int64) error) error {
	be := binary.BigEndian
	off, end := h.snapOff, h.snapOff
	for i := int64(0); i < h.nbSnapshots; i++ {
		what := fmt.Sprintf("qcow2 snapshot table entry %d", i)
		if err := inFile(off, 40, size, what); err != nil {
			return err
		}
		e, err := readFull(r, off, 40)
		if err != nil {
			return err
		}
		l1Off, ok := span.Int(be.Uint64(e))
		l1Size := int64(be.Uint32(e[8:]))
		if !ok || l1Off%h.cluster != 0 || l1Size > qcow2MaxL1Bytes/8 {
			return corruptAt(what, off, "qcow2 snapshot %d has an invalid L1 table (offset %#x, %d entries)", i, be.Uint64(e), l1Size)
		}
		l1What := fmt.Sprintf("the L1 table of qcow2 snapshot %d", i)
		if err := inFile(l1Off, l1Size*8, size, l1What); err != nil {
			return err
		}
		if err := meta(l1What, l1Off, l1Size*8); err != nil {
			return err
		}
		idLen, nameLen := int64(be.Uint16(e[12:])), int64(be.Uint16(e[14:]))
		extra := int64(be.Uint32(e[36:]))
		if extra > qcow2MaxExtraData {
			return corruptAt(what, off, "qcow2 snapshot %d has %d bytes of extra data, more than qemu allows", i, extra)
		}
		// Entries are padded to 8 bytes, but the last one may end the file.
		end = off + 40 + extra + idLen + nameLen
		if end-h.snapOff > qcow2MaxSnapshotBytes {
			return corruptAt("qcow2 snapshot table", h.snapOff, "the qcow2 snapshot table is larger than qemu allows (%d bytes)", qcow2MaxSnapshotBytes)
		}
		off = (end + 7) &^ 7
	}
	if end > h.snapOff {
		if err := inFile(h.snapOff, end-h.snapOff, size, "the qcow2 snapshot table"); err != nil {
			return err
		}
		return meta("the qcow2 snapshot table", h.snapOff, end-h.snapOff)
	}
	return nil
}

// checkL2 walks the active L1 table and each L2 table it names.
func (h *qcow2Header) checkL2(r io.ReaderAt, size int64, meta func(string, int64, int64) error) error {
	be := binary.BigEndian
	entryBytes := int64(8)
	if h.extendedL2 {
		entryBytes = 16
	}
	var read int64
	l2 := make([]byte, h.cluster)
	return scanTable(r, h.l1Off, h.l1Size, 8, func(i int64, e []byte) error {
		if h.skippedTables {
			return nil
		}
		v := be.Uint64(e)
		l2Off := int64(v & qcow2OffMask)
		if l2Off == 0 {
			return nil
		}
		what := fmt.Sprintf("qcow2 L2 table %d", i)
		if l2Off%h.cluster != 0 {
			return corruptAt("qcow2 L1 table", h.l1Off+i*8, "qcow2 L1 entry %d points at %#x, not a cluster boundary", i, l2Off)
		}
		if err := inFile(l2Off, h.cluster, size, what); err != nil {
			return err
		}
		if err := meta(what, l2Off, h.cluster); err != nil {
			return err
		}
		if read += h.cluster; read > maxTableRead {
			h.skippedTables = true
			return nil
		}
		if _, err := r.ReadAt(l2, l2Off); err != nil {
			return readErr(err, what, l2Off)
		}
		for j := int64(0); j+entryBytes <= h.cluster; j += entryBytes {
			if err := h.checkL2Entry(be.Uint64(l2[j:]), i, j/entryBytes, l2Off+j, size); err != nil {
				return err
			}
		}
		return nil
	})
}

func (h *qcow2Header) checkL2Entry(e uint64, table, idx, at, size int64) error {
	where := fmt.Sprintf("qcow2 L2 table %d entry %d", table, idx)
	if e&qcow2Compressed != 0 {
		// Compressed: the host offset and a sector count share the low 62
		// bits; several compressed clusters may pack into one cluster.
		x := 62 - (h.clusterBits - 8)
		off := int64(e & (1<<x - 1))
		n := (int64(e>>x)&(1<<(h.clusterBits-8)-1) + 1) * 512
		n -= off & 511
		if off >= size {
			return truncated(off+1, size, "a compressed qcow2 cluster ("+where+")")
		}
		// The last sector count may run past the end of the file.
		if c := h.claims.Claim("", span.Packed, off, min(n, size-off)); c != nil {
			return corruptAt(where, at, "%s points at compressed data at offset %d that overlaps %s at offset %d", where, off, c.With, c.Offset)
		}
		return nil
	}
	off := int64(e & qcow2OffMask)
	if off == 0 {
		return nil
	}
	if off%h.cluster != 0 {
		return corruptAt(where, at, "%s points at %#x, not a cluster boundary", where, off)
	}
	if err := inFile(off, h.cluster, size, "a qcow2 data cluster ("+where+")"); err != nil {
		return err
	}
	if c := h.claims.Claim("", span.Data, off, h.cluster); c != nil {
		return corruptAt(where, at, "%s points at the cluster at offset %d, which is already used by %s", where, off, c.With)
	}
	return nil
}
