package testimg

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
)

// Sparse tar dialects GNU tar writes with --sparse: the old GNU type 'S'
// member, and the three PAX encodings (GNU.sparse.* records).
var SparseTarFormats = []string{"gnu", "pax-0.0", "pax-0.1", "pax-1.0"}

// SparseOVA writes a tar bomb: an OVA (the OVF, then its disk) whose disk
// member is a sparse file claiming claim bytes, of which the archive holds
// only a few KiB. GNU tar writes it, in format (one of SparseTarFormats),
// from a sparse file it reads with SEEK_HOLE, so nothing large is ever
// written here either.
func SparseOVA(path, name, ovf, diskFile string, claim int64, format string) error {
	dir, err := os.MkdirTemp(filepath.Dir(path), ".sparse-ova-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := os.WriteFile(filepath.Join(dir, name+".ovf"), []byte(ovf), 0o644); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(dir, diskFile))
	if err != nil {
		return err
	}
	// Data at the start, in the middle and at the end, holes between.
	for _, off := range []int64{0, claim / 2, claim - 4096} {
		if _, err := f.WriteAt([]byte("KDMV sparse bomb"), off); err != nil {
			f.Close()
			return err
		}
	}
	if err := f.Truncate(claim); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	args := []string{"--sparse", "-cf", path, "-C", dir}
	switch format {
	case "gnu":
		args = append(args, "--format=gnu")
	case "pax-0.0", "pax-0.1", "pax-1.0":
		args = append(args, "--format=posix", "--sparse-version="+format[4:])
	default:
		return fmt.Errorf("unknown sparse tar format %q", format)
	}
	args = append(args, name+".ovf", diskFile) // the OVF first, as in every OVA
	if out, err := exec.Command("tar", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("tar %v: %v: %s", args, err, out)
	}
	return nil
}

// DiskUsage is the space a folder's files take on disk (st_blocks, as du
// counts it), not their apparent sizes: a sparse file costs only what it
// holds.
func DiskUsage(dir string) (int64, error) {
	var total int64
	err := filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			total += st.Blocks * 512 // st_blocks counts 512-byte units
		}
		return nil
	})
	return total, err
}
