package testimg

import (
	"encoding/binary"
	"fmt"
	"os"
)

// ReadVDI returns the guest-visible bytes of a VDI image, read without qemu.
func ReadVDI(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := make([]byte, 512)
	if _, err := f.ReadAt(h, 0); err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	if le.Uint32(h[0x40:]) != 0xbeda107f {
		return nil, fmt.Errorf("%s: not a VDI", path)
	}
	bmapOff, dataOff := int64(le.Uint32(h[0x154:])), int64(le.Uint32(h[0x158:]))
	size, block, blocks := int64(le.Uint64(h[0x170:])), int64(le.Uint32(h[0x178:])), int64(le.Uint32(h[0x180:]))
	bmap := make([]byte, blocks*4)
	if _, err := f.ReadAt(bmap, bmapOff); err != nil {
		return nil, err
	}
	out := make([]byte, size)
	for i := int64(0); i < blocks; i++ {
		b := le.Uint32(bmap[i*4:])
		if b >= 0xfffffffe {
			continue
		}
		dst := out[i*block : min((i+1)*block, size)]
		if _, err := f.ReadAt(dst, dataOff+int64(b)*block); err != nil {
			return nil, err
		}
	}
	return out, nil
}
