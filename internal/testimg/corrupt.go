package testimg

import (
	"encoding/binary"
	"fmt"
	"os"
)

// GrainDamage is what CorruptGrain breaks.
type GrainDamage int

const (
	// DeflateData flips the bytes of the grain's compressed data.
	DeflateData GrainDamage = iota
	// MarkerSize makes the grain marker claim 2 GiB of compressed data.
	MarkerSize
)

// CorruptGrain damages the compressed grain of the streamOptimized VMDK at
// path that starts at guest byte at. The header, the grain directory and
// the grain tables stay sound, so the image passes every header check and
// only reading that grain fails, mid-conversion.
func CorruptGrain(path string, at int64, damage GrainDamage) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	le := binary.LittleEndian
	if len(b) < 512 || string(b[:4]) != "KDMV" {
		return fmt.Errorf("%s is not a sparse VMDK", path)
	}
	off := int64(le.Uint64(b[64:])) * 512 // the overhead: markers follow
	for off+16 <= int64(len(b)) {
		val, size := le.Uint64(b[off:]), int64(le.Uint32(b[off+8:]))
		if size == 0 { // a metadata marker: val sectors of metadata follow
			if le.Uint32(b[off+12:]) == 0 {
				break // end of stream
			}
			off += 512 + int64(val)*512
			continue
		}
		if int64(val)*512 == at {
			switch damage {
			case DeflateData:
				for i := off + 12 + 2; i < off+12+size && i < int64(len(b)); i++ {
					b[i] ^= 0x5a
				}
			case MarkerSize:
				le.PutUint32(b[off+8:], 0x7fffffff)
			}
			return os.WriteFile(path, b, 0o644)
		}
		off += (12 + size + 511) / 512 * 512
	}
	return fmt.Errorf("%s has no grain at byte %d", path, at)
}
