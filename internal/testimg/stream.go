package testimg

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
)

// StreamOptimized writes a streamOptimized VMDK laid out the way VMware
// exports it (and OVAs carry it): compressed grains with markers, then the
// grain tables, the grain directory and a footer at the end of the file,
// with the header's grain directory offset set to "at end". qemu-img writes
// its grain tables up front instead, so this shape can only come from here.
func StreamOptimized(path string, size int64, l Layer) error {
	const grainSectors = 128
	const grainBytes = grainSectors * sector
	const gtes = 512
	gs, err := grains(l, grainBytes, true)
	if err != nil {
		return err
	}
	capacity := uint64(size / sector)
	desc := Descriptor(0x5eed, 0xffffffff, "streamOptimized", "", fmt.Sprintf("RW %d SPARSE %q", capacity, filepath.Base(path)))
	descSectors := uint64((len(desc) + sector - 1) / sector)
	overhead := 1 + descSectors
	header := func(gdOffset uint64) []byte {
		h := make([]byte, sector)
		le := binary.LittleEndian
		copy(h, "KDMV")
		le.PutUint32(h[4:], 3)
		le.PutUint32(h[8:], 1|1<<16|1<<17)
		le.PutUint64(h[12:], capacity)
		le.PutUint64(h[20:], grainSectors)
		le.PutUint64(h[28:], 1)
		le.PutUint64(h[36:], descSectors)
		le.PutUint32(h[44:], gtes)
		le.PutUint64(h[56:], gdOffset)
		le.PutUint64(h[64:], overhead)
		copy(h[73:], "\n \r\n")
		le.PutUint16(h[77:], 1)
		return h
	}
	var f bytes.Buffer
	f.Write(header(0xffffffffffffffff))
	f.Write(desc)
	pad := func() {
		if r := f.Len() % sector; r != 0 {
			f.Write(make([]byte, sector-r))
		}
	}
	pad()
	marker := func(val uint64, size, typ uint32) {
		m := make([]byte, sector)
		binary.LittleEndian.PutUint64(m, val)
		binary.LittleEndian.PutUint32(m[8:], size)
		binary.LittleEndian.PutUint32(m[12:], typ)
		f.Write(m)
	}
	nGT := (capacity/grainSectors + gtes - 1) / gtes
	gt := make([]uint32, nGT*gtes)
	for _, g := range sortedKeys(gs) {
		gt[g] = uint32(f.Len() / sector)
		var z bytes.Buffer
		w := zlib.NewWriter(&z)
		w.Write(gs[g])
		w.Close()
		hdr := make([]byte, 12)
		binary.LittleEndian.PutUint64(hdr, uint64(g)*grainSectors)
		binary.LittleEndian.PutUint32(hdr[8:], uint32(z.Len()))
		f.Write(hdr)
		f.Write(z.Bytes())
		pad()
	}
	gd := make([]uint32, nGT)
	for i := uint64(0); i < nGT; i++ {
		marker(gtes*4/sector, 0, 1)
		gd[i] = uint32(f.Len() / sector)
		binary.Write(&f, binary.LittleEndian, gt[i*gtes:(i+1)*gtes])
	}
	marker(uint64((nGT*4+sector-1)/sector), 0, 2)
	gdOffset := uint64(f.Len() / sector)
	binary.Write(&f, binary.LittleEndian, gd)
	pad()
	marker(1, 0, 3)
	f.Write(header(gdOffset))
	marker(0, 0, 0)
	return os.WriteFile(path, f.Bytes(), 0o644)
}
