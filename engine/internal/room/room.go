// Package room measures the room FETCH may fill in the cache: the free
// space of its file system less a reserve. Downloads (engine/fetch) and OVA
// extraction (engine/ovf) are bounded by it, and say so in the same words.
package room

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
)

// The reserve keeps a fetch that runs up to the bound from starving
// everything else on that file system (the output, the work folder, the
// system itself when the cache is under /var or a home folder).
const (
	reserveFraction = 20      // 5% of the file system
	reserveMax      = 1 << 30 // but never more than 1 GiB
)

// Room is the free space in Dir's file system and the part of it a fetch
// leaves alone.
type Room struct {
	Dir           string
	Free, Reserve int64
}

// In measures the room of dir's file system.
func In(dir string) (Room, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return Room{}, err
	}
	size := int64(st.Blocks) * st.Bsize
	return Room{Dir: dir, Free: int64(st.Bavail) * st.Bsize, Reserve: min(reserveMax, size/reserveFraction)}, nil
}

// Near measures the room of dir, or of the nearest folder above it that
// exists: the cache's folders are made on demand.
func Near(dir string) (Room, error) {
	for {
		if _, err := os.Stat(dir); err == nil || filepath.Dir(dir) == dir {
			break
		}
		dir = filepath.Dir(dir)
	}
	return In(dir)
}

// Usable is how much a fetch may write.
func (r Room) Usable() int64 { return max(0, r.Free-r.Reserve) }

// TooBig is the fault for something that does not fit: label names what
// the user wrote (the URL, the OVA member), not the cache file.
func (r Room) TooBig(label string, need int64, what string) *fault.Error {
	return fault.New(fault.NoSpace, label, "%s needs %s, but the cache folder %s has only %s free (and %s of that is kept in reserve)",
		what, Human(need), r.Dir, Human(r.Free), Human(r.Reserve)).
		WithHint("Free space in %s, or set the provider's cache_dir to a folder on a larger file system, then apply again.", r.Dir).
		WithFact("Cache folder", r.Dir).
		WithFact("Needed", fmt.Sprintf("%d bytes", need)).
		WithFact("Free", fmt.Sprintf("%d bytes", r.Free))
}

// Writer remembers the first error of the writer it wraps, so that a copy
// can tell a full disk (the writer) from a dropped connection or a
// truncated archive (the reader).
type Writer struct {
	W   io.Writer
	Err error
}

func (w *Writer) Write(p []byte) (int, error) {
	n, err := w.W.Write(p)
	if err != nil && w.Err == nil {
		w.Err = err
	}
	return n, err
}

// IsNoSpace reports a full file system or an exhausted quota.
func IsNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// Human renders a size in binary units.
func Human(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
