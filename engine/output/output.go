// Package output guards the output path. Outputs appear atomically: the
// conversion writes a hidden temporary file beside the output and renames
// it into place only when complete, so a failed, cancelled or killed run
// never leaves a partial file at the output path. An exclusive lock held for
// the whole write keeps two writers of one path from interleaving; whoever
// holds it also removes temporary files that a killed run left behind, and
// the lock file itself goes with the lock. A set of files (set.go, one
// image per disk of a machine and its report) is published the same way,
// as one folder put in place of the previous one.
package output

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/engine/internal/room"
)

// ReportSuffix names the JSON report written beside an output.
const ReportSuffix = ".vmconv.json"

// ReportPath is where the report of the output at path lives.
func ReportPath(path string) string { return path + ReportSuffix }

// MarkdownSuffix names the Markdown report beside an output: the JSON
// report's summary, for a pull request.
const MarkdownSuffix = ".vmconv.md"

// MarkdownPath is where the Markdown report of the output at path lives.
func MarkdownPath(path string) string { return path + MarkdownSuffix }

// BootLogPath is where the console log of the output's boot test is kept.
func BootLogPath(path string) string { return path + ".boot-test.log" }

// CheckDir verifies the output folder exists and is a writable folder.
func CheckDir(path string) error {
	dir := filepath.Dir(path)
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return fault.New(fault.OutputDirMissing, path, "the output folder %s does not exist", dir).
			WithHint("Create the folder first (vmconv does not create folders, so a typo cannot scatter disks), or fix output.path.")
	}
	if err != nil {
		return fault.Wrap(fault.OutputNotWritable, path, err, "cannot access the output folder %s", dir)
	}
	if !fi.IsDir() {
		return fault.New(fault.OutputDirMissing, path, "%s is not a folder", dir)
	}
	if err := syscall.Access(dir, 2 /* W_OK */); err != nil {
		return fault.Wrap(fault.OutputNotWritable, path, err, "the output folder %s is not writable", dir).
			WithHint("Fix the folder's permissions or mount options (is it mounted read-only?), or choose another output.path.")
	}
	return nil
}

// CheckNotSource refuses an output path that is, or links to, a file of
// the source. Overwrite does not lift this.
func CheckNotSource(path string, sources []string) error {
	outInfo, outErr := os.Stat(path) // follows a symlink at the output path
	real := path
	if r, err := filepath.EvalSymlinks(filepath.Dir(path)); err == nil {
		real = filepath.Join(r, filepath.Base(path))
	}
	for _, s := range sources {
		same := false
		if outErr == nil {
			if si, err := os.Stat(s); err == nil && os.SameFile(outInfo, si) {
				same = true
			}
		}
		if rs, err := filepath.EvalSymlinks(s); err == nil && rs == real {
			same = true
		}
		if same {
			return fault.New(fault.OutputIsSource, path,
				"the output path is (or links to) %s, a file of the source disk; writing there would destroy the source", s).
				WithHint("Choose an output.path outside the source's files. overwrite = true does not allow this.")
		}
	}
	return nil
}

// CheckFree refuses an output path where an unmanaged file already exists.
func CheckFree(path string, overwrite bool) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fault.Wrap(fault.OutputNotWritable, path, err, "cannot check the output path")
	}
	if fi.IsDir() {
		return fault.New(fault.OutputExists, path, "the output path is a folder").
			WithHint("output.path must name a file.")
	}
	if overwrite {
		return nil
	}
	if _, err := os.Stat(ReportPath(path)); err == nil {
		return fault.New(fault.OutputExists, path, "a vmconv output that this resource does not manage already exists at the output path").
			WithHint("To manage it as it is, import it: `terraform import <resource address> %s` (its report, %s, records how it was made). "+
				"Otherwise move or delete it, choose another output.path, or set output.overwrite = true to replace it.", path, ReportPath(path))
	}
	return fault.New(fault.OutputExists, path, "a file that this resource does not manage already exists at the output path").
		WithHint("Move or delete it, choose another output.path, or set output.overwrite = true to replace it. "+
			"It has no vmconv report beside it (%s), so it cannot be imported.", filepath.Base(ReportPath(path)))
}

// FreeBytes is the space available to this user in path's folder.
func FreeBytes(path string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(filepath.Dir(path), &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * st.Bsize, nil
}

// CheckSpace compares an estimate with the free space.
func CheckSpace(path string, need int64) error {
	free, err := FreeBytes(path)
	if err != nil {
		return fault.Wrap(fault.OutputNotWritable, path, err, "cannot read the free space of the output folder")
	}
	if need > free {
		return fault.New(fault.NoSpace, path,
			"the output needs about %s but only %s is free in %s", room.Human(need), room.Human(free), filepath.Dir(path)).
			WithHint("Free space there, or choose an output.path on a larger file system.").
			WithFact("Needed", fmt.Sprintf("%d bytes", need)).WithFact("Free", fmt.Sprintf("%d bytes", free))
	}
	return nil
}

// Commit makes a completed temporary file the output: fsync the data,
// rename over the output, fsync the folder so the rename survives a crash.
func Commit(tmp, path string) error {
	f, err := os.OpenFile(tmp, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return SyncDir(filepath.Dir(path))
}

// SyncDir fsyncs a folder.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// WriteAtomic writes data to path through a temporary file and rename.
func WriteAtomic(path string, data []byte, perm os.FileMode) error {
	tmp := TempName(path)
	if err := os.WriteFile(tmp, data, perm); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := Commit(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// TempName is a fresh hidden name beside path for something that will be
// renamed to path: ".<name>.tmp-<pid>-<random>". The writer's pid lets
// CleanStale tell a killed writer's leftover from a live writer's file.
func TempName(path string) string {
	b := make([]byte, 6)
	rand.Read(b)
	return filepath.Join(filepath.Dir(path), fmt.Sprintf(".%s%s%d-%s", filepath.Base(path), tmpInfix, os.Getpid(), hex.EncodeToString(b)))
}

// CommitDir puts a completed temporary folder in place of dir. The folder
// is replaced, not merged: a file the previous run kept and this one did
// not is gone afterwards. A previous dir is swapped out in one atomic
// exchange, so a killed run leaves the old folder or the new one, never
// none; the old one, then at tmp, is deleted afterwards (or, if the run is
// killed first, by the next CleanStale). Only where the file system cannot
// exchange is dir deleted before the rename.
func CommitDir(tmp, dir string) error {
	if err := SyncDir(tmp); err != nil {
		return err
	}
	err := exchange(tmp, dir)
	switch {
	case err == nil:
		err = SyncDir(filepath.Dir(dir))
		os.RemoveAll(tmp)
		return err
	case errors.Is(err, fs.ErrNotExist): // no previous dir
	case noExchange(err):
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
	default:
		return err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return err
	}
	return SyncDir(filepath.Dir(dir))
}
