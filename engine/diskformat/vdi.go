package diskformat

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
)

const (
	// vdiBlock is the only block size qemu reads.
	vdiBlock = 1 << 20
	// vdiHeaderEnd is where the version 1.1 header ends (pre-header + header).
	vdiHeaderEnd = 0x190
	vdiFree      = 0xffffffff
	vdiZero      = 0xfffffffe
)

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
		return nil, corruptAt("VDI header", 0x44, "unsupported VDI version %#x", ver)
	}
	imgType := le.Uint32(h[0x4c:])
	bmapOff := int64(le.Uint32(h[0x154:]))
	dataOff := int64(le.Uint32(h[0x158:]))
	block := int64(le.Uint32(h[0x178:]))
	blocks := int64(le.Uint32(h[0x180:]))
	allocated := int64(le.Uint32(h[0x184:]))
	if imgType == 4 || !bytes.Equal(h[0x1b8:0x1c8], make([]byte, 16)) {
		return nil, unsupported("Clone the disk into a standalone image in VirtualBox (VBoxManage clonemedium), then convert that.",
			"the VDI is a differencing image (it has a parent), which vmconv does not read")
	}
	if imgType != 1 && imgType != 2 {
		return nil, corruptAt("VDI header", 0x4c, "unknown VDI image type %d", imgType)
	}
	if block != vdiBlock {
		return nil, corruptAt("VDI header", 0x178, "the VDI block size is %d bytes; VirtualBox and qemu use %d", block, vdiBlock)
	}
	if ss := le.Uint32(h[0x168:]); ss != 512 {
		return nil, corruptAt("VDI header", 0x168, "the VDI sector size is %d bytes, not 512", ss)
	}
	vs, err := checkVirtualSize("VDI", le.Uint64(h[0x170:]), 0x170)
	if err != nil {
		return nil, err
	}
	if blocks*block < vs {
		return nil, corruptAt("VDI header", 0x180, "the VDI block map has %d blocks of %d bytes, less than the %d-byte disk the header declares", blocks, block, vs)
	}
	if blocks > MaxVirtualSize/vdiBlock {
		return nil, corruptAt("VDI header", 0x180, "the VDI block map of %d blocks is beyond any disk", blocks)
	}
	if allocated > blocks {
		return nil, corruptAt("VDI header", 0x184, "the VDI header says %d blocks are allocated, of only %d", allocated, blocks)
	}
	if bmapOff < vdiHeaderEnd || bmapOff%512 != 0 {
		return nil, corruptAt("VDI block map", 0x154, "the VDI block map offset %d is not a sector boundary after the header", bmapOff)
	}
	if dataOff%512 != 0 || dataOff < bmapOff+blocks*4 {
		return nil, corruptAt("VDI data area", 0x158, "the VDI data offset %d is not a sector boundary after the block map (which ends at %d)", dataOff, bmapOff+blocks*4)
	}
	if err := inFile(bmapOff, blocks*4, size, "the VDI block map"); err != nil {
		return nil, err
	}
	// Blocks are numbered by allocation: each number may appear once, and
	// only numbers below the allocated count.
	used := make([]uint64, (allocated+63)/64)
	err = scanTable(r, bmapOff, blocks, 4, func(i int64, e []byte) error {
		b := int64(le.Uint32(e))
		if b == vdiFree || b == vdiZero {
			return nil
		}
		what := fmt.Sprintf("VDI block %d", i)
		at := bmapOff + i*4
		if b >= allocated {
			return corruptAt("VDI block map", at, "VDI block map entry %d names data block %d, but only %d are allocated", i, b, allocated)
		}
		if used[b/64]&(1<<(b%64)) != 0 {
			first := firstUser(r, bmapOff, i, b)
			return corruptAt("VDI block map", at, "VDI block map entries %d and %d both name data block %d at offset %d", first, i, b, dataOff+b*block)
		}
		used[b/64] |= 1 << (b % 64)
		if end := dataOff + (b+1)*block; end > size {
			return truncated(end, size, what)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &Info{VirtualSize: vs}, nil
}

// firstUser finds the earlier block map entry that names data block b, for
// the message; it rereads the map, which happens once, on the error path.
func firstUser(r io.ReaderAt, bmapOff, upTo, b int64) int64 {
	var first int64 = -1
	scanTable(r, bmapOff, upTo, 4, func(i int64, e []byte) error {
		if first < 0 && int64(binary.LittleEndian.Uint32(e)) == b {
			first = i
		}
		return nil
	})
	return first
}
