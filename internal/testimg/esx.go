package testimg

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
)

const sector = 512

// Descriptor renders a VMDK text descriptor.
func Descriptor(cid, parentCID uint32, createType, parentHint string, extents ...string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Disk DescriptorFile\nversion=1\nencoding=\"UTF-8\"\nCID=%08x\nparentCID=%08x\n", cid, parentCID)
	fmt.Fprintf(&b, "isNativeSnapshot=\"no\"\ncreateType=\"%s\"\n", createType)
	if parentHint != "" {
		fmt.Fprintf(&b, "parentFileNameHint=\"%s\"\n", parentHint)
	}
	b.WriteString("\n# Extent description\n")
	for _, e := range extents {
		b.WriteString(e + "\n")
	}
	b.WriteString("\n# The Disk Data Base\n#DDB\n\nddb.adapterType = \"pvscsi\"\nddb.virtualHWVersion = \"19\"\n")
	return b.Bytes()
}

// VMFSFlat writes an ESX thick disk: name.vmdk (createType vmfs) and
// name-flat.vmdk holding the raw data.
func VMFSFlat(dir, name string, cid uint32, size int64, l Layer) (string, error) {
	flat := name + "-flat.vmdk"
	if err := RawFile(filepath.Join(dir, flat), size, l); err != nil {
		return "", err
	}
	p := filepath.Join(dir, name+".vmdk")
	d := Descriptor(cid, 0xffffffff, "vmfs", "", fmt.Sprintf("RW %d VMFS %q", size/sector, flat))
	return p, os.WriteFile(p, d, 0o644)
}

// grains returns the content a layer allocates, keyed by grain index. A
// snapshot delta's grains must be written whole (their other bytes would
// come from the parent), so its writes must be grain aligned; a base image's
// partial grains are filled with zeros.
func grains(l Layer, grainBytes int64, base bool) (map[int64][]byte, error) {
	out := map[int64][]byte{}
	for _, w := range l {
		if !base && (w.Offset%grainBytes != 0 || w.Length%grainBytes != 0) {
			return nil, fmt.Errorf("write at %d+%d is not aligned to %d-byte grains", w.Offset, w.Length, grainBytes)
		}
		for off := w.Offset - w.Offset%grainBytes; off < w.Offset+w.Length; off += grainBytes {
			g, ok := out[off/grainBytes]
			if !ok {
				g = make([]byte, grainBytes)
				out[off/grainBytes] = g
			}
			lo, hi := max(w.Offset, off), min(w.Offset+w.Length, off+grainBytes)
			copy(g[lo-off:hi-off], bytes.Repeat([]byte{w.Byte}, int(hi-lo)))
		}
	}
	return out, nil
}

// VMFSSparse writes an ESX vmfsSparse snapshot: name.vmdk (createType
// vmfsSparse, naming parent) and name-delta.vmdk in COWD format.
func VMFSSparse(dir, name, parent string, cid, parentCID uint32, size int64, grainSectors uint32, l Layer) (string, error) {
	grainBytes := int64(grainSectors) * sector
	gs, err := grains(l, grainBytes, false)
	if err != nil {
		return "", err
	}
	sectors := size / sector
	perGT := int64(4096) * int64(grainSectors)
	gdEntries := (sectors + perGT - 1) / perGT
	gdOff := int64(4)
	gdSectors := (gdEntries*4 + sector - 1) / sector
	next := gdOff + gdSectors
	gtSector := map[int64]int64{}
	for g := range gs {
		if _, ok := gtSector[g/4096]; !ok {
			gtSector[g/4096] = 0
		}
	}
	for _, gi := range sortedKeys(gtSector) {
		gtSector[gi] = next
		next += 4096 * 4 / sector
	}
	file := make([]byte, next*sector)
	le := binary.LittleEndian
	grainAt := map[int64]int64{}
	for _, g := range sortedKeys(gs) {
		grainAt[g] = next
		next += int64(grainSectors)
	}
	file = append(file, make([]byte, (next*sector)-int64(len(file)))...)
	copy(file, "COWD")
	le.PutUint32(file[4:], 1)
	le.PutUint32(file[8:], 3)
	le.PutUint32(file[12:], uint32(sectors))
	le.PutUint32(file[16:], grainSectors)
	le.PutUint32(file[20:], uint32(gdOff))
	le.PutUint32(file[24:], uint32(gdEntries))
	le.PutUint32(file[28:], uint32(next))
	for gi, s := range gtSector {
		le.PutUint32(file[gdOff*sector+gi*4:], uint32(s))
	}
	for g, data := range gs {
		gt := gtSector[g/4096]
		le.PutUint32(file[gt*sector+(g%4096)*4:], uint32(grainAt[g]))
		copy(file[grainAt[g]*sector:], data)
	}
	delta := name + "-delta.vmdk"
	if err := os.WriteFile(filepath.Join(dir, delta), file, 0o644); err != nil {
		return "", err
	}
	p := filepath.Join(dir, name+".vmdk")
	d := Descriptor(cid, parentCID, "vmfsSparse", parent, fmt.Sprintf("RW %d VMFSSPARSE %q", sectors, delta))
	return p, os.WriteFile(p, d, 0o644)
}

// SESparse writes a VMFS6 seSparse snapshot: name.vmdk (createType
// seSparse, naming parent) and name-sesparse.vmdk. Writes must be aligned
// to its 4 KiB grains.
func SESparse(dir, name, parent string, cid, parentCID uint32, size int64, l Layer) (string, error) {
	const grainSectors, gtSectors = 8, 64
	const grainBytes = grainSectors * sector
	const perGT = gtSectors * sector / 8 // entries per grain table
	gs, err := grains(l, grainBytes, false)
	if err != nil {
		return "", err
	}
	sectors := size / sector
	gdEntries := (sectors/grainSectors + perGT - 1) / perGT
	gdSectors := (gdEntries*8 + sector - 1) / sector
	gdOff := int64(4)
	gtOff := gdOff + gdSectors
	gtIndex := map[int64]int64{}
	for g := range gs {
		gtIndex[g/perGT] = 0
	}
	for i, gi := range sortedKeys(gtIndex) {
		gtIndex[gi] = int64(i)
	}
	grainsOff := gtOff + int64(len(gtIndex))*gtSectors
	file := make([]byte, (grainsOff+int64(len(gs))*grainSectors)*sector)
	le := binary.LittleEndian
	put := func(sec int64, vals ...uint64) {
		for i, v := range vals {
			le.PutUint64(file[sec*sector+int64(i)*8:], v)
		}
	}
	put(0, 0xcafebabe, 0x0000000200000001, uint64(sectors), grainSectors, gtSectors, 0, 0, 0, 0, 0,
		1, 1, 2, 1, 3, 1, uint64(gdOff), uint64(gdSectors), uint64(gtOff), uint64(len(gtIndex))*gtSectors,
		0, 0, 0, 0, uint64(grainsOff), uint64(len(gs))*grainSectors)
	put(1, 0xcafecafe, uint64(len(gtIndex)), 1, 0)
	for gi, idx := range gtIndex {
		le.PutUint64(file[gdOff*sector+gi*8:], 0x1000000000000000|uint64(idx))
	}
	for i, g := range sortedKeys(gs) {
		idx := uint64(i)
		entry := 0x3000000000000000 | (idx&0xfff)<<48 | idx>>12
		gt := gtOff + gtIndex[g/perGT]*gtSectors
		le.PutUint64(file[gt*sector+(g%perGT)*8:], entry)
		copy(file[(grainsOff+int64(i)*grainSectors)*sector:], gs[g])
	}
	data := name + "-sesparse.vmdk"
	if err := os.WriteFile(filepath.Join(dir, data), file, 0o644); err != nil {
		return "", err
	}
	p := filepath.Join(dir, name+".vmdk")
	d := Descriptor(cid, parentCID, "seSparse", parent, fmt.Sprintf("RW %d SESPARSE %q", sectors, data))
	return p, os.WriteFile(p, d, 0o644)
}

func sortedKeys[V any](m map[int64]V) []int64 {
	out := make([]int64, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}
