// Package wintest builds what the Windows tests need without a Windows
// licence: registry hives in the regf format written by its own code, a
// minimal PE executable, a Windows-like NTFS disk and a fake virtio-win
// tree. Nothing here is used by the engine; the engine reads and edits
// hives with hivex through libguestfs.
package wintest

import (
	"encoding/binary"
	"sort"
	"strings"

	"github.com/vmconv/terraform-provider-vmconv/engine/guest"
)

// Value types.
const (
	RegSZ       = 1
	RegExpandSZ = 2
	RegBinary   = 3
	RegDWORD    = 4
	RegMultiSZ  = 7
)

// Key is a registry key to write.
type Key struct {
	Name   string
	Values []Value
	Subs   []*Key
}

// Value is a registry value.
type Value struct {
	Name string
	Type uint32
	Data []byte
}

// Child returns the subkey with name, creating it.
func (k *Key) Child(name string) *Key {
	for _, s := range k.Subs {
		if strings.EqualFold(s.Name, name) {
			return s
		}
	}
	c := &Key{Name: name}
	k.Subs = append(k.Subs, c)
	return c
}

// Path returns the key at a backslash-separated path, creating it.
func (k *Key) Path(p string) *Key {
	cur := k
	for _, part := range strings.Split(p, `\`) {
		if part != "" {
			cur = cur.Child(part)
		}
	}
	return cur
}

// SZ sets a string value.
func (k *Key) SZ(name, s string) *Key {
	k.Values = append(k.Values, Value{name, RegSZ, guest.SZ(s)})
	return k
}

// ExpandSZ sets an expandable string value.
func (k *Key) ExpandSZ(name, s string) *Key {
	k.Values = append(k.Values, Value{name, RegExpandSZ, guest.SZ(s)})
	return k
}

// DWORD sets a 32-bit value.
func (k *Key) DWORD(name string, v uint32) *Key {
	k.Values = append(k.Values, Value{name, RegDWORD, guest.DWORD(v)})
	return k
}

// Binary sets a binary value.
func (k *Key) Binary(name string, b []byte) *Key {
	k.Values = append(k.Values, Value{name, RegBinary, b})
	return k
}

// writer lays cells out in hive bins.
type writer struct {
	data   []byte // the hive bins' contents, from the first bin
	sk     int32
	binEnd int
}

// cell appends an allocated cell holding b and returns its offset.
func (w *writer) cell(b []byte) int32 {
	size := (4 + len(b) + 7) &^ 7
	// A cell may not straddle hive bins: start a new bin when needed.
	if len(w.data)+size > w.binEnd {
		w.pad()
		w.bin(size)
	}
	off := int32(len(w.data))
	c := make([]byte, size)
	binary.LittleEndian.PutUint32(c, uint32(-int32(size)))
	copy(c[4:], b)
	w.data = append(w.data, c...)
	return off
}

// bin starts a hive bin big enough for a cell of size.
func (w *writer) bin(size int) {
	n := ((size + 32 + 4095) / 4096) * 4096
	h := make([]byte, 32)
	copy(h, "hbin")
	binary.LittleEndian.PutUint32(h[4:], uint32(len(w.data)))
	binary.LittleEndian.PutUint32(h[8:], uint32(n))
	w.data = append(w.data, h...)
	w.binEnd = len(w.data) - 32 + n
}

// pad closes the current bin with a free cell.
func (w *writer) pad() {
	if w.binEnd == 0 || len(w.data) >= w.binEnd {
		return
	}
	free := w.binEnd - len(w.data)
	c := make([]byte, free)
	binary.LittleEndian.PutUint32(c, uint32(free))
	w.data = append(w.data, c...)
}

// Hive serializes a root key as a regf hive file.
func Hive(root *Key, name string) []byte {
	w := &writer{}
	w.bin(0)
	// One security descriptor for every key: owner and group absent, a
	// NULL DACL (everyone may do anything), self-relative.
	sd := make([]byte, 20)
	sd[0] = 1
	binary.LittleEndian.PutUint16(sd[2:], 0x8004)
	skb := make([]byte, 20+len(sd))
	copy(skb, "sk")
	binary.LittleEndian.PutUint32(skb[16:], uint32(len(sd)))
	copy(skb[20:], sd)
	w.sk = w.cell(skb)
	rootOff := w.key(root, -1, true)
	// The sk cell points to itself and counts its users.
	n := uint32(count(root))
	o := int(w.sk) + 4
	binary.LittleEndian.PutUint32(w.data[o+4:], uint32(w.sk))
	binary.LittleEndian.PutUint32(w.data[o+8:], uint32(w.sk))
	binary.LittleEndian.PutUint32(w.data[o+12:], n)
	w.pad()

	base := make([]byte, 4096)
	copy(base, "regf")
	binary.LittleEndian.PutUint32(base[4:], 1)  // sequence 1
	binary.LittleEndian.PutUint32(base[8:], 1)  // sequence 2
	binary.LittleEndian.PutUint32(base[20:], 1) // major
	binary.LittleEndian.PutUint32(base[24:], 3) // minor
	binary.LittleEndian.PutUint32(base[28:], 0) // primary file
	binary.LittleEndian.PutUint32(base[32:], 1) // direct memory load
	binary.LittleEndian.PutUint32(base[36:], uint32(rootOff))
	binary.LittleEndian.PutUint32(base[40:], uint32(len(w.data)))
	binary.LittleEndian.PutUint32(base[44:], 1) // clustering factor
	fn := guest.SZ(name)
	copy(base[48:48+64], fn)
	var sum uint32
	for i := 0; i < 508; i += 4 {
		sum ^= binary.LittleEndian.Uint32(base[i:])
	}
	binary.LittleEndian.PutUint32(base[508:], sum)
	return append(base, w.data...)
}

func count(k *Key) int {
	n := 1
	for _, s := range k.Subs {
		n += count(s)
	}
	return n
}

// key writes k, its values and subkeys, and returns its nk cell offset.
func (w *writer) key(k *Key, parent int32, root bool) int32 {
	name := k.Name
	if root && name == "" {
		name = "ROOT"
	}
	nk := make([]byte, 0x4C+len(name))
	copy(nk, "nk")
	flags := uint16(0x20) // ASCII name
	if root {
		flags |= 0x0C // hive entry, no delete
	}
	binary.LittleEndian.PutUint16(nk[2:], flags)
	binary.LittleEndian.PutUint32(nk[16:], uint32(parent))
	binary.LittleEndian.PutUint32(nk[20:], uint32(len(k.Subs)))
	binary.LittleEndian.PutUint32(nk[28:], 0xFFFFFFFF) // subkey list, set below
	binary.LittleEndian.PutUint32(nk[32:], 0xFFFFFFFF) // volatile list
	binary.LittleEndian.PutUint32(nk[36:], uint32(len(k.Values)))
	binary.LittleEndian.PutUint32(nk[40:], 0xFFFFFFFF)
	binary.LittleEndian.PutUint32(nk[44:], uint32(w.sk))
	binary.LittleEndian.PutUint32(nk[48:], 0xFFFFFFFF) // class
	var maxSub, maxVal, maxData int
	for _, s := range k.Subs {
		maxSub = max(maxSub, 2*len(s.Name))
	}
	for _, v := range k.Values {
		maxVal, maxData = max(maxVal, 2*len(v.Name)), max(maxData, len(v.Data))
	}
	binary.LittleEndian.PutUint32(nk[52:], uint32(maxSub))
	binary.LittleEndian.PutUint32(nk[60:], uint32(maxVal))
	binary.LittleEndian.PutUint32(nk[64:], uint32(maxData))
	binary.LittleEndian.PutUint16(nk[72:], uint16(len(name)))
	copy(nk[0x4C:], name)
	self := w.cell(nk)

	if len(k.Values) > 0 {
		offs := make([]byte, 4*len(k.Values))
		for i, v := range k.Values {
			binary.LittleEndian.PutUint32(offs[4*i:], uint32(w.value(v)))
		}
		list := w.cell(offs) // may grow w.data: index it afterwards
		binary.LittleEndian.PutUint32(w.data[int(self)+4+40:], uint32(list))
	}
	if len(k.Subs) > 0 {
		subs := append([]*Key(nil), k.Subs...)
		sort.Slice(subs, func(i, j int) bool { return strings.ToUpper(subs[i].Name) < strings.ToUpper(subs[j].Name) })
		lh := make([]byte, 4+8*len(subs))
		copy(lh, "lh")
		binary.LittleEndian.PutUint16(lh[2:], uint16(len(subs)))
		for i, s := range subs {
			binary.LittleEndian.PutUint32(lh[4+8*i:], uint32(w.key(s, self, false)))
			binary.LittleEndian.PutUint32(lh[8+8*i:], lhHash(s.Name))
		}
		list := w.cell(lh)
		binary.LittleEndian.PutUint32(w.data[int(self)+4+28:], uint32(list))
	}
	return self
}

func lhHash(name string) uint32 {
	var h uint32
	for _, c := range strings.ToUpper(name) {
		h = h*37 + uint32(c)
	}
	return h
}

func (w *writer) value(v Value) int32 {
	vk := make([]byte, 20+len(v.Name))
	copy(vk, "vk")
	binary.LittleEndian.PutUint16(vk[2:], uint16(len(v.Name)))
	binary.LittleEndian.PutUint32(vk[12:], v.Type)
	binary.LittleEndian.PutUint16(vk[16:], 1) // ASCII name
	copy(vk[20:], v.Name)
	if len(v.Data) <= 4 {
		binary.LittleEndian.PutUint32(vk[4:], uint32(len(v.Data))|0x80000000)
		copy(vk[8:12], v.Data)
	} else {
		binary.LittleEndian.PutUint32(vk[4:], uint32(len(v.Data)))
		binary.LittleEndian.PutUint32(vk[8:], uint32(w.cell(v.Data)))
	}
	return w.cell(vk)
}
