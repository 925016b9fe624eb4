package engine

import "testing"

// TestParseIOError reads qemu-img 7.2's own failure lines (the strings are
// those in its binary).
func TestParseIOError(t *testing.T) {
	for _, tc := range []struct {
		name, stderr string
		ok, write    bool
		offset       int64
		msg          string
	}{
		{"read", "qemu-img: error while reading at byte 3276800: Invalid argument\n", true, false, 3276800, "Invalid argument"},
		{"block status", "qemu-img: error while reading block status at offset 1048576: Input/output error", true, false, 1048576, "Input/output error"},
		{"write", "qemu-img: error while writing at byte 33554432: No space left on device", true, true, 33554432, "No space left on device"},
		{"last line wins", "qemu-img: warning: x\nqemu-img: error while reading at byte 512: Invalid argument\nqemu-img: error while writing at byte 1024: Input/output error", true, true, 1024, "Input/output error"},
		{"open failure", "qemu-img: Could not open 'x': No such file or directory", false, false, 0, ""},
		{"empty", "", false, false, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := parseIOError(tc.stderr)
			if ok != tc.ok || got.write != tc.write || got.offset != tc.offset || got.msg != tc.msg {
				t.Fatalf("got %+v %v", got, ok)
			}
		})
	}
}

func TestPosition(t *testing.T) {
	for _, tc := range []struct {
		off, size int64
		want      string
	}{
		{196608, 4 << 20, "192 KiB (5% of 4 MiB)"},
		{3276800, 8 << 20, "3.1 MiB (39% of 8 MiB)"},
		{100, 0, "100 B"},
		{1 << 40, 2 << 40, "1 TiB (50% of 2 TiB)"},
	} {
		if got := position(tc.off, tc.size); got != tc.want {
			t.Errorf("position(%d, %d) = %q, want %q", tc.off, tc.size, got, tc.want)
		}
	}
}
