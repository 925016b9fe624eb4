package testimg

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"fmt"
	"io"
	"os"
)

// ReadQcow2 returns the guest-visible bytes of a standalone qcow2 image.
// It is deliberately independent of qemu so that tests never let qemu
// judge what qemu wrote. It supports what qemu-img convert produces:
// version 2 and 3, no backing file, standard, zero and deflate-compressed
// clusters.
func ReadQcow2(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := make([]byte, 112)
	if _, err := f.ReadAt(h, 0); err != nil {
		return nil, err
	}
	be := binary.BigEndian
	if !bytes.Equal(h[:4], []byte("QFI\xfb")) {
		return nil, fmt.Errorf("%s: not qcow2", path)
	}
	version := be.Uint32(h[4:])
	if be.Uint64(h[8:]) != 0 {
		return nil, fmt.Errorf("%s: has a backing file", path)
	}
	clusterBits := be.Uint32(h[20:])
	size := int64(be.Uint64(h[24:]))
	l1Size := int64(be.Uint32(h[36:]))
	l1Off := int64(be.Uint64(h[40:]))
	if version == 3 {
		if inc := be.Uint64(h[72:]); inc&^uint64(1) != 0 {
			return nil, fmt.Errorf("%s: incompatible features %#x not supported by this reader", path, inc)
		}
		if hl := be.Uint32(h[100:]); hl > 104 && h[104] != 0 {
			return nil, fmt.Errorf("%s: compression type %d is not zlib; this reader handles zlib only", path, h[104])
		}
	}
	cluster := int64(1) << clusterBits
	out := make([]byte, size)
	l1 := make([]byte, l1Size*8)
	if _, err := f.ReadAt(l1, l1Off); err != nil {
		return nil, err
	}
	l2Entries := cluster / 8
	l2 := make([]byte, cluster)
	const offMask = 0x00fffffffffffe00
	for i := int64(0); i < l1Size; i++ {
		l2Off := int64(be.Uint64(l1[i*8:]) & offMask)
		if l2Off == 0 {
			continue
		}
		if _, err := f.ReadAt(l2, l2Off); err != nil {
			return nil, err
		}
		for j := int64(0); j < l2Entries; j++ {
			guest := (i*l2Entries + j) * cluster
			if guest >= size {
				break
			}
			e := be.Uint64(l2[j*8:])
			dst := out[guest:min(guest+cluster, size)]
			switch {
			case e&(1<<62) != 0:
				x := 62 - (clusterBits - 8)
				off := int64(e & (1<<x - 1))
				sectors := int64((e>>x)&(1<<(clusterBits-8)-1)) + 1
				comp := make([]byte, sectors*512-(off&511))
				n, err := f.ReadAt(comp, off)
				if err != nil && err != io.EOF {
					return nil, err
				}
				data, err := io.ReadAll(io.LimitReader(flate.NewReader(bytes.NewReader(comp[:n])), cluster))
				if err != nil && err != io.ErrUnexpectedEOF {
					return nil, fmt.Errorf("cluster %d: %w", guest/cluster, err)
				}
				copy(dst, data)
			case e&1 != 0 && version == 3:
				// zero cluster
			case e&offMask != 0:
				if _, err := f.ReadAt(dst, int64(e&offMask)); err != nil && err != io.EOF {
					return nil, err
				}
			}
		}
	}
	return out, nil
}
