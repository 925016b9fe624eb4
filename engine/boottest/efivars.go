package boottest

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"unicode/utf16"

	"github.com/vmconv/terraform-provider-vmconv/engine/internal/guid"
)

// ESP locates an EFI system partition, for writing a boot entry.
type ESP struct {
	Number   uint32
	StartLBA uint64
	SizeLBA  uint64
	// GUID is the partition's unique GUID, as text.
	GUID string
}

var (
	// The variable store GUIDs edk2 uses: authenticated and plain.
	authVarGUID   = guid.Must("aaf32c78-947b-439a-a180-2e144ec37792")
	plainVarGUID  = guid.Must("ddcf3616-3275-4164-98b6-fe85707ffe7d")
	globalVarGUID = guid.Must("8be4df61-93ca-11d2-aa0d-00e098032b8c")
)

func ucs2z(s string) []byte {
	u := utf16.Encode([]rune(s))
	b := make([]byte, 2*len(u)+2)
	for i, c := range u {
		binary.LittleEndian.PutUint16(b[2*i:], c)
	}
	return b
}

// loadOption builds an EFI_LOAD_OPTION: active, with a short-form hard
// drive device path (the firmware expands it by partition GUID) and the
// loader's file path.
func loadOption(desc string, esp ESP, loader string) ([]byte, error) {
	var dp bytes.Buffer
	hd := make([]byte, 42)
	hd[0], hd[1] = 4, 1 // MEDIA, HARDDRIVE
	binary.LittleEndian.PutUint16(hd[2:], 42)
	binary.LittleEndian.PutUint32(hd[4:], esp.Number)
	binary.LittleEndian.PutUint64(hd[8:], esp.StartLBA)
	binary.LittleEndian.PutUint64(hd[16:], esp.SizeLBA)
	g, err := guid.Parse(esp.GUID)
	if err != nil {
		return nil, fmt.Errorf("the ESP's partition GUID: %w", err)
	}
	copy(hd[24:40], g)
	hd[40], hd[41] = 2, 2 // GPT, GUID signature
	dp.Write(hd)
	name := ucs2z(strings.ReplaceAll(loader, "/", `\`))
	fp := make([]byte, 4)
	fp[0], fp[1] = 4, 4 // MEDIA, FILEPATH
	binary.LittleEndian.PutUint16(fp[2:], uint16(4+len(name)))
	dp.Write(fp)
	dp.Write(name)
	dp.Write([]byte{0x7f, 0xff, 4, 0}) // end of device path
	var o bytes.Buffer
	binary.Write(&o, binary.LittleEndian, uint32(1)) // LOAD_OPTION_ACTIVE
	binary.Write(&o, binary.LittleEndian, uint16(dp.Len()))
	o.Write(ucs2z(desc))
	o.Write(dp.Bytes())
	return o.Bytes(), nil
}

// AddBootEntry appends Boot0000 and BootOrder to an edk2 (OVMF) variable
// store image and returns the new image.
func AddBootEntry(image []byte, desc string, esp ESP, loader string) ([]byte, error) {
	out := append([]byte(nil), image...)
	if len(out) < 0x48 || string(out[40:44]) != "_FVH" {
		return nil, fmt.Errorf("not a firmware volume (no _FVH signature)")
	}
	hdrLen := int(binary.LittleEndian.Uint16(out[48:]))
	store := hdrLen
	if store+28 > len(out) {
		return nil, fmt.Errorf("variable store header beyond the image")
	}
	sig := out[store : store+16]
	auth := bytes.Equal(sig, authVarGUID)
	if !auth && !bytes.Equal(sig, plainVarGUID) {
		return nil, fmt.Errorf("unknown variable store format")
	}
	size := int(binary.LittleEndian.Uint32(out[store+16:]))
	end := store + size
	if end > len(out) {
		return nil, fmt.Errorf("variable store size %d beyond the image", size)
	}
	hdr := 32
	if auth {
		hdr = 60
	}
	// Walk the variables to the first free slot, checking names as we go.
	off := store + 28
	for off+hdr <= end && binary.LittleEndian.Uint16(out[off:]) == 0x55aa {
		nameSize := int(binary.LittleEndian.Uint32(out[off+hdr-24:]))
		dataSize := int(binary.LittleEndian.Uint32(out[off+hdr-20:]))
		state := out[off+2]
		name := out[off+hdr : off+hdr+nameSize]
		if state == 0x3f && (bytes.Equal(name, ucs2z("BootOrder")) || bytes.Equal(name, ucs2z("Boot0000"))) {
			return nil, fmt.Errorf("the variable store already has boot entries")
		}
		off += hdr + nameSize + dataSize
		off = (off + 3) &^ 3
	}
	add := func(name string, data []byte) error {
		n := ucs2z(name)
		rec := make([]byte, hdr)
		binary.LittleEndian.PutUint16(rec[0:], 0x55aa)
		rec[2] = 0x3f                               // VAR_ADDED
		binary.LittleEndian.PutUint32(rec[4:], 0x7) // NV, BS, RT
		binary.LittleEndian.PutUint32(rec[hdr-24:], uint32(len(n)))
		binary.LittleEndian.PutUint32(rec[hdr-20:], uint32(len(data)))
		copy(rec[hdr-16:], globalVarGUID)
		rec = append(append(rec, n...), data...)
		for len(rec)%4 != 0 {
			rec = append(rec, 0xff)
		}
		if off+len(rec) > end {
			return fmt.Errorf("no room in the variable store")
		}
		copy(out[off:], rec)
		off += len(rec)
		return nil
	}
	opt, err := loadOption(desc, esp, loader)
	if err != nil {
		return nil, err
	}
	if err := add("Boot0000", opt); err != nil {
		return nil, err
	}
	if err := add("BootOrder", []byte{0, 0}); err != nil {
		return nil, err
	}
	return out, nil
}
