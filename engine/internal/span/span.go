// Package span does the offset arithmetic of the image parsers. Every
// offset, size and count in an image header is attacker-controlled, so a
// product or sum of them may overflow int64, and a uint64 field may become
// negative when cast. The helpers here do that arithmetic checked, and Map
// records which parts of a file an image's structures claim, so that two
// tables (or a table and a grain) pointing at the same bytes are refused.
package span

import "math/bits"

// MaxFile bounds every offset and length the parsers accept: 1 PiB, far
// beyond any disk image, and small enough that the sum of two such values
// cannot overflow int64.
const MaxFile = int64(1) << 50

// Int converts an on-disk unsigned value, refusing anything above MaxFile
// (which includes every value that would be negative as an int64).
func Int(v uint64) (int64, bool) {
	if v > uint64(MaxFile) {
		return 0, false
	}
	return int64(v), true
}

// Mul returns a*b for non-negative a and b, or ok=false if either is
// negative or the product exceeds MaxFile.
func Mul(a, b int64) (int64, bool) {
	if a < 0 || b < 0 {
		return 0, false
	}
	hi, lo := bits.Mul64(uint64(a), uint64(b))
	if hi != 0 || lo > uint64(MaxFile) {
		return 0, false
	}
	return int64(lo), true
}

// End returns off+n, or ok=false if either is negative or the sum exceeds
// MaxFile.
func End(off, n int64) (int64, bool) {
	if off < 0 || n < 0 || off > MaxFile || n > MaxFile || off+n > MaxFile {
		return 0, false
	}
	return off + n, true
}

// Within reports whether [off, off+n) lies inside a file of size bytes,
// and returns the end (meaningful for messages even when it does not fit;
// MaxFile when the sum itself is out of range).
func Within(off, n, size int64) (int64, bool) {
	end, ok := End(off, n)
	if !ok {
		return MaxFile, false
	}
	return end, end <= size
}

// Overlap reports whether [a, a+an) and [b, b+bn) share a byte.
func Overlap(a, an, b, bn int64) bool {
	return an > 0 && bn > 0 && a < b+bn && b < a+an
}
