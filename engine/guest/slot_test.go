package guest

import (
	"sort"
	"testing"
)

// Slots sort as a guest enumerates its disks: SCSI, SATA, NVMe, IDE, a
// bus vmconv does not know last; then controller; then unit (numerically:
// unit 10 after unit 2).
func TestDiskSlotCompare(t *testing.T) {
	want := []DiskSlot{
		{"scsi", 0, 0}, {"scsi", 0, 2}, {"scsi", 0, 10}, {"scsi", 1, 0},
		{"sata", 0, 0}, {"sata", 1, 0}, {"nvme", 0, 0}, {"ide", 0, 1}, {"", 0, 0}, {"usb", 0, 0},
	}
	got := []DiskSlot{want[9], want[6], want[2], want[4], want[0], want[8], want[7], want[3], want[5], want[1]}
	sort.Slice(got, func(i, j int) bool { return got[i].Compare(got[j]) < 0 })
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("sorted %v, want %v", got, want)
		}
	}
	if c := (DiskSlot{"sata", 0, 1}).Compare(DiskSlot{"sata", 0, 1}); c != 0 {
		t.Errorf("a slot compared with itself: %d", c)
	}
}
