package output

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
)

// RemoveSet deletes the set at dir, and the files beside it named in
// beside (a boot log), under the folder's lock, so that a run writing the
// set is never deleted under. Only a folder that is a whole vmconv set is
// deleted: one with no manifest, or holding anything its manifest does not
// list, is someone's files and is refused untouched, as are links and
// files. The folder is first renamed to a temporary name, so a delete
// killed half-way leaves a temporary that the next holder of the lock
// sweeps, never a half-deleted set at dir. What is already gone is not an
// error.
func RemoveSet(dir string, beside ...string) error {
	dir = filepath.Clean(dir)
	if _, err := os.Stat(filepath.Dir(dir)); errors.Is(err, fs.ErrNotExist) {
		return nil // its parent is gone, and the set with it
	}
	l, err := Acquire(dir)
	if err != nil {
		return err
	}
	defer l.Release()
	// A killed fallback publish may have parked the only copy of the set:
	// restore it first, so that it is deleted, not left behind.
	if _, err := l.CleanStale(); err != nil {
		return fault.Wrap(fault.OutputNotWritable, dir, err, "cannot clean up after an interrupted run beside %s", dir)
	}
	fi, err := os.Lstat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return removeAll(beside)
	case err != nil:
		return fault.Wrap(fault.OutputNotWritable, dir, err, "cannot check the output folder %s", dir)
	case fi.Mode()&fs.ModeSymlink != 0:
		target, _ := os.Readlink(dir)
		return notDeleting(dir, "it is a symbolic link (to "+target+"), not the folder vmconv wrote", nil)
	case !fi.IsDir():
		return notDeleting(dir, fmt.Sprintf("it is not a folder (%s)", fi.Mode().Type()), nil)
	}
	if _, err := setMembers(dir); err != nil {
		var no *notOurs
		if !errors.As(err, &no) {
			return fault.Wrap(fault.OutputNotWritable, dir, err, "cannot read the output folder %s", dir)
		}
		return notDeleting(dir, no.reason, no.files)
	}
	if err := removeAll(beside); err != nil {
		return err
	}
	trash := TempName(dir)
	if err := os.Rename(dir, trash); err != nil {
		return fault.Wrap(fault.OutputNotWritable, dir, err, "cannot move the output folder aside to delete it")
	}
	if err := SyncDir(filepath.Dir(dir)); err != nil {
		return fault.Wrap(fault.OutputNotWritable, dir, err, "the output folder was moved aside but the rename could not be flushed to disk")
	}
	if err := os.RemoveAll(trash); err != nil {
		return fault.Wrap(fault.OutputNotWritable, trash, err, "cannot delete the output folder, moved aside to %s", trash)
	}
	return nil
}

func removeAll(files []string) error {
	for _, p := range files {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fault.Wrap(fault.OutputNotWritable, p, err, "cannot remove a file of the output")
		}
	}
	return nil
}

// notDeleting is the refusal to delete what is not (only) a vmconv set.
func notDeleting(dir, why string, found []string) error {
	fe := fault.New(fault.OutputExists, dir, "not deleting the output folder %s: %s", dir, why).
		WithHint("vmconv deletes only a folder it wrote that holds nothing but its own files. " +
			"Move your files out of it and destroy again; to keep the folder as it is, remove the resource from the state (terraform state rm) instead.")
	if len(found) > 0 {
		shown := found
		if len(shown) > 5 {
			shown = append(slices.Clip(shown[:5]), fmt.Sprintf("and %d more", len(found)-5))
		}
		fe = fe.WithFact("Found", strings.Join(shown, ", "))
	}
	return fe
}
