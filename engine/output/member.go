package output

import (
	"errors"
	"os"
	"path/filepath"
	"slices"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
)

// UpdateMember rewrites one member of the published set at dir (its
// report, after a boot test ran again) with what update makes of its
// current content, all under the folder's lock, so a set another apply
// published meanwhile is updated, not overwritten with an older copy. The
// new content is written beside the folder, under a name the lock's
// CleanStale sweeps once its writer is gone, and renamed over the member:
// the folder never holds a file that is not a member, nor half a member.
func UpdateMember(dir, name string, update func(old []byte) ([]byte, error)) error {
	dir = filepath.Clean(dir)
	l, err := Acquire(dir)
	if err != nil {
		return err
	}
	defer l.Release()
	members, err := setMembers(dir)
	if err != nil {
		var no *notOurs
		if errors.As(err, &no) {
			return fault.New(fault.OutputNotWritable, dir, "the output folder is not the set vmconv published: %s", no.reason)
		}
		return fault.Wrap(fault.OutputNotWritable, dir, err, "cannot read the output folder")
	}
	if !slices.Contains(members, name) {
		return fault.New(fault.Internal, dir, "%s is not a member of the set", name)
	}
	old, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return fault.Wrap(fault.OutputNotWritable, dir, err, "cannot read %s", name)
	}
	data, err := update(old)
	if err != nil {
		return err
	}
	tmp := TempName(ReportPath(dir))
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		os.Remove(tmp)
		return fault.Wrap(fault.OutputNotWritable, tmp, err, "cannot write the new %s", name)
	}
	if err := fsyncFile(tmp); err != nil {
		os.Remove(tmp)
		return fault.Wrap(fault.OutputNotWritable, tmp, err, "cannot flush the new %s", name)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		os.Remove(tmp)
		return fault.Wrap(fault.OutputNotWritable, dir, err, "cannot replace %s", name)
	}
	if err := SyncDir(dir); err != nil {
		return fault.Wrap(fault.OutputNotWritable, dir, err, "%s was replaced but the rename could not be flushed to disk", name)
	}
	return nil
}
