package output

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
)

// A set is an output made of several files (one image per disk of a
// virtual machine, and its report) that must appear together: a failed or
// killed run leaves none of the new files, or all of the previous ones,
// never a mix. Its members are written into a hidden temporary folder
// beside the set's folder, which then replaces the folder in one rename.

// SetManifest names the file vmconv writes into every set's folder. It
// lists the members, and it is how a later run tells a folder vmconv may
// replace from a user's folder it must never delete.
const SetManifest = ".vmconv-set.json"

// parkInfix names the fallback's parked previous set:
// ".<name>.vmconv-old-<pid>-<random>". Unlike a temporary, a parked set
// may be the only complete copy there is, so the sweep restores it
// instead of deleting it when the folder is missing.
const parkInfix = ".vmconv-old-"

// testHoldEnv is the kill tests' seam (the engine's VMCONV_TEST_HOLD): when
// it names a point of Commit, Commit stops there until its context ends,
// so a test can SIGKILL the process at that exact moment. Points:
// "set-before-publish" (the temporary folder is complete, nothing renamed),
// "set-after-park" (fallback only: the previous set is parked, the folder
// is missing) and "set-after-publish" (the new set is in place, the
// previous one not yet deleted).
const testHoldEnv = "VMCONV_TEST_HOLD"

func hold(ctx context.Context, point string) {
	if os.Getenv(testHoldEnv) == point {
		<-ctx.Done()
	}
}

// exchange swaps two paths atomically. A variable so that tests can make
// it fail as a file system without RENAME_EXCHANGE does.
var exchange = func(a, b string) error {
	return unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE)
}

// noExchange reports whether the file system lacks RENAME_EXCHANGE.
func noExchange(err error) bool {
	return errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EOPNOTSUPP)
}

type manifest struct {
	Tool    string   `json:"tool"`
	Format  int      `json:"format"`
	Members []string `json:"members"`
}

// SetOptions says what BeginSet may replace.
type SetOptions struct {
	// Replace allows replacing a previous vmconv set at the folder (one
	// this resource manages, or one the user asked to overwrite). Without
	// it a previous set is refused, as CheckFree refuses an unmanaged
	// output. A folder with files vmconv did not write is refused always.
	Replace bool
}

// Set is a set of output files being written, holding the folder's lock.
type Set struct {
	dir, tmp  string
	opts      SetOptions
	lock      *Lock
	names     []string
	committed bool
}

// BeginSet takes dir's lock, recovers what a killed run left (see
// CleanStale), checks that dir may be written and creates the private
// temporary folder the members are written into. Defer Abort right after.
func BeginSet(dir string, opts SetOptions) (*Set, error) {
	dir = filepath.Clean(dir)
	if err := checkName(dir); err != nil {
		return nil, err
	}
	if err := checkParent(dir); err != nil {
		return nil, err
	}
	l, err := Acquire(dir)
	if err != nil {
		return nil, err
	}
	s := &Set{dir: dir, opts: opts, lock: l}
	if _, err := l.CleanStale(); err != nil {
		l.Release()
		return nil, fault.Wrap(fault.OutputNotWritable, dir, err, "cannot clean up after an interrupted run beside %s", dir)
	}
	if _, err := inspect(dir, opts); err != nil {
		l.Release()
		return nil, err
	}
	s.tmp = TempName(dir)
	if err := os.Mkdir(s.tmp, 0o755); err != nil {
		l.Release()
		return nil, fault.Wrap(fault.OutputNotWritable, dir, err, "cannot create the temporary folder %s", s.tmp)
	}
	return s, nil
}

// CheckSet makes BeginSet's checks of dir without taking its lock or
// writing anything, for a plan: the name, the parent, and what is at dir
// (nothing, an empty folder, or a previous set opts allow replacing).
func CheckSet(dir string, opts SetOptions) error {
	dir = filepath.Clean(dir)
	if err := checkName(dir); err != nil {
		return err
	}
	if err := checkParent(dir); err != nil {
		return err
	}
	_, err := inspect(dir, opts)
	return err
}

func checkName(dir string) error {
	if b := filepath.Base(dir); b == "/" || b == "." || b == ".." || strings.HasPrefix(b, ".") {
		return fault.New(fault.InvalidRequest, dir, "%q cannot be an output folder", dir).
			WithHint("output.dir must name a folder (not hidden, not the root) inside an existing folder.")
	}
	return nil
}

// checkParent is CheckDir for a folder output: vmconv creates the set's
// folder but not its parent, so a typo cannot scatter disks.
func checkParent(dir string) error {
	parent := filepath.Dir(dir)
	fi, err := os.Stat(parent)
	switch {
	case errors.Is(err, fs.ErrNotExist) || err == nil && !fi.IsDir():
		return fault.New(fault.OutputDirMissing, dir, "the folder %s, which would hold the output folder, does not exist", parent).
			WithHint("Create %s first (vmconv creates only the output folder itself), or fix output.dir.", parent)
	case err != nil:
		return fault.Wrap(fault.OutputNotWritable, dir, err, "cannot access %s", parent)
	}
	if err := syscall.Access(parent, 2 /* W_OK */); err != nil {
		return fault.Wrap(fault.OutputNotWritable, dir, err, "the folder %s is not writable", parent).
			WithHint("vmconv publishes the output folder by renaming it into %s. Fix its permissions or mount options, or choose another output.dir.", parent)
	}
	return nil
}

// Dir is the set's folder.
func (s *Set) Dir() string { return s.dir }

// Path is where to write the member called name. Names are plain file
// names; the ones starting with "." are vmconv's (the manifest, the
// temporaries).
func (s *Set) Path(name string) (string, error) {
	if name == "" || name != filepath.Base(name) || strings.HasPrefix(name, ".") {
		return "", fault.New(fault.InvalidRequest, s.dir, "%q cannot name a file of the output folder", name).
			WithHint("Member names are plain file names that do not start with a dot.")
	}
	if !slices.Contains(s.names, name) {
		s.names = append(s.names, name)
	}
	return filepath.Join(s.tmp, name), nil
}

// Commit publishes the members. It writes the manifest, fsyncs every
// member and the temporary folder, and puts the folder in place of dir:
// a rename when dir is missing or empty, an atomic exchange when dir holds
// a previous set (deleted afterwards), so that dir shows the complete
// previous set or the complete new one at every instant. Where the file
// system cannot exchange, the previous set is parked under a name the
// next BeginSet (or CleanStale) restores from if the new set did not make
// it into place. Call Abort afterwards in any case.
func (s *Set) Commit(ctx context.Context) error {
	if s.committed || s.lock == nil {
		return fault.New(fault.Internal, s.dir, "the output set was already committed or aborted")
	}
	if err := s.seal(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fault.Wrap(fault.Cancelled, s.dir, err, "cancelled before the output folder %s was replaced", s.dir).
			WithHint("Nothing changed at the output folder; the next apply starts over.")
	}
	hold(ctx, "set-before-publish")
	kind, err := inspect(s.dir, s.opts)
	if err != nil {
		return err
	}
	parent := filepath.Dir(s.dir)
	if kind != previousSet {
		// rename(2) replaces an empty folder and fails on one that is no
		// longer empty, so a file dropped in since inspect is never lost.
		if err := rename(s.tmp, s.dir); err != nil {
			return fault.Wrap(fault.OutputNotWritable, s.dir, err, "cannot move the output folder into place")
		}
		s.committed = true
		return syncErr(s.dir, SyncDir(parent))
	}
	err = exchange(s.tmp, s.dir)
	if noExchange(err) {
		return s.parkAndPublish(ctx)
	}
	if err != nil {
		return fault.Wrap(fault.OutputNotWritable, s.dir, err, "cannot swap the new output folder in for the previous one")
	}
	// The previous set is at s.tmp now. If someone replaced it with their
	// own folder since inspect, swap back rather than delete their files.
	if _, err := setMembers(s.tmp); err != nil {
		if xerr := exchange(s.tmp, s.dir); xerr != nil {
			return fault.Wrap(fault.Internal, s.dir, xerr, "cannot swap back %s, which changed while vmconv replaced it; it is at %s now", s.dir, s.tmp)
		}
		return foreign(s.dir, err)
	}
	s.committed = true
	err = SyncDir(parent)
	hold(ctx, "set-after-publish")
	os.RemoveAll(s.tmp) // a leftover is a dead writer's temporary: swept
	return syncErr(s.dir, err)
}

// parkAndPublish is Commit without RENAME_EXCHANGE: two renames, with a
// moment where dir is missing and the previous set is parked beside it.
func (s *Set) parkAndPublish(ctx context.Context) error {
	park := parkName(s.dir)
	if err := os.Rename(s.dir, park); err != nil {
		return fault.Wrap(fault.OutputNotWritable, s.dir, err, "cannot move the previous output folder aside")
	}
	if _, err := setMembers(park); err != nil {
		if rerr := os.Rename(park, s.dir); rerr != nil {
			return fault.Wrap(fault.Internal, s.dir, rerr, "cannot move back %s, which changed while vmconv replaced it; it is at %s now", s.dir, park)
		}
		return foreign(s.dir, err)
	}
	hold(ctx, "set-after-park")
	if err := rename(s.tmp, s.dir); err != nil {
		if rerr := os.Rename(park, s.dir); rerr != nil {
			return fault.Wrap(fault.OutputNotWritable, s.dir, err,
				"cannot move the output folder into place, nor the previous one back (%v); the next apply restores it from %s", rerr, park)
		}
		return fault.Wrap(fault.OutputNotWritable, s.dir, err, "cannot move the output folder into place")
	}
	s.committed = true
	err := SyncDir(filepath.Dir(s.dir))
	hold(ctx, "set-after-publish")
	discard(s.dir, park)
	return syncErr(s.dir, err)
}

// rename is rename(2) itself. os.Rename refuses to replace a folder, even
// an empty one, and checks that with a separate Lstat, which is a race;
// the system call replaces an empty folder and fails on one with files.
func rename(from, to string) error {
	if err := syscall.Rename(from, to); err != nil {
		return &os.LinkError{Op: "rename", Old: from, New: to, Err: err}
	}
	return nil
}

func syncErr(dir string, err error) error {
	if err == nil {
		return nil
	}
	return fault.Wrap(fault.OutputNotWritable, dir, err, "the output folder is in place but its rename could not be flushed to disk")
}

// discard deletes a parked set. It is renamed to a temporary name first:
// a parked name always holds a complete set (the sweep may restore it), a
// partly deleted one is under a name the sweep deletes.
func discard(dir, park string) error {
	trash := TempName(dir)
	if err := os.Rename(park, trash); err != nil {
		return err
	}
	return os.RemoveAll(trash)
}

// seal checks the temporary folder holds exactly the members asked for,
// writes the manifest and fsyncs the lot.
func (s *Set) seal() error {
	entries, err := os.ReadDir(s.tmp)
	if err != nil {
		return fault.Wrap(fault.OutputNotWritable, s.dir, err, "cannot read the temporary folder %s", s.tmp)
	}
	found := map[string]bool{}
	for _, e := range entries {
		if !e.Type().IsRegular() || !slices.Contains(s.names, e.Name()) {
			return fault.New(fault.Internal, s.dir, "the temporary output folder holds %s, which is not a member of the set", e.Name())
		}
		found[e.Name()] = true
	}
	members := slices.Sorted(slices.Values(s.names))
	for _, n := range members {
		if !found[n] {
			return fault.New(fault.Internal, s.dir, "the member %s of the output set was never written", n)
		}
		if err := fsyncFile(filepath.Join(s.tmp, n)); err != nil {
			return fault.Wrap(fault.OutputNotWritable, s.dir, err, "cannot flush %s to disk", n)
		}
	}
	b, _ := json.MarshalIndent(manifest{Tool: "vmconv", Format: 1, Members: members}, "", "  ")
	mp := filepath.Join(s.tmp, SetManifest)
	if err := os.WriteFile(mp, b, 0o644); err != nil {
		return fault.Wrap(fault.OutputNotWritable, s.dir, err, "cannot write the set's manifest")
	}
	if err := fsyncFile(mp); err != nil {
		return fault.Wrap(fault.OutputNotWritable, s.dir, err, "cannot flush the set's manifest to disk")
	}
	if err := SyncDir(s.tmp); err != nil {
		return fault.Wrap(fault.OutputNotWritable, s.dir, err, "cannot flush the temporary folder to disk")
	}
	return nil
}

func fsyncFile(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// Abort removes the temporary folder (the new members if Commit did not
// publish them, the previous ones if it did and was interrupted before
// deleting them) and releases the lock. After a successful Commit it only
// releases the lock. It never touches dir or a parked set.
func (s *Set) Abort() {
	if s == nil || s.lock == nil {
		return
	}
	if s.tmp != "" {
		os.RemoveAll(s.tmp)
	}
	s.lock.Release()
	s.lock = nil
}

type dirKind int

const (
	missing dirKind = iota
	emptyDir
	previousSet
)

// inspect says what is at dir, refusing what vmconv must not replace.
func inspect(dir string, opts SetOptions) (dirKind, error) {
	fi, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return missing, nil
	}
	if err != nil {
		return 0, fault.Wrap(fault.OutputNotWritable, dir, err, "cannot check the output folder %s", dir)
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		target, _ := os.Readlink(dir)
		return 0, fault.New(fault.OutputExists, dir, "the output folder %s is a symbolic link (to %s)", dir, target).
			WithHint("vmconv puts the output folder in place by renaming, which would replace the link, not write where it points. " +
				"Set output.dir to the real folder, or to a path that does not exist yet.")
	}
	if !fi.IsDir() {
		return 0, fault.New(fault.OutputExists, dir, "%s is a file, not a folder", dir).
			WithHint("output.dir names the folder vmconv creates for the disks. Move the file away or choose another output.dir.")
	}
	if pi, err := os.Stat(filepath.Dir(dir)); err == nil && devOf(pi) != devOf(fi) {
		return 0, fault.New(fault.OutputExists, dir, "the output folder %s is a mount point", dir).
			WithHint("vmconv replaces the output folder by renaming a new one into place, which cannot replace a mount point. " +
				"Set output.dir to a folder inside it.")
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, fault.Wrap(fault.OutputNotWritable, dir, err, "cannot list the output folder %s", dir)
	}
	if len(entries) == 0 {
		return emptyDir, nil
	}
	if _, err := setMembers(dir); err != nil {
		return 0, foreign(dir, err)
	}
	if !opts.Replace {
		return 0, fault.New(fault.OutputExists, dir, "a vmconv output that this resource does not manage already exists in %s", dir).
			WithHint("Choose another output.dir, move the folder away, or set output.overwrite = true to replace it.")
	}
	return previousSet, nil
}

func devOf(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Dev)
	}
	return 0
}

// notOurs says why a folder is not (only) a vmconv set.
type notOurs struct {
	reason string
	files  []string
}

func (e *notOurs) Error() string { return e.reason }

// setMembers returns the members of the set at dir, or a *notOurs error
// when dir is not a vmconv set or holds anything besides its members: such
// a folder is never deleted, since something in it is not vmconv's.
func setMembers(dir string) ([]string, error) {
	b, err := os.ReadFile(filepath.Join(dir, SetManifest))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	var m manifest
	if err != nil || json.Unmarshal(b, &m) != nil || m.Tool != "vmconv" {
		names, _ := entryNames(dir)
		return nil, &notOurs{reason: "it has no readable " + SetManifest + ", so vmconv did not write it", files: names}
	}
	names, err := entryNames(dir)
	if err != nil {
		return nil, err
	}
	var extra []string
	for _, n := range names {
		fi, err := os.Lstat(filepath.Join(dir, n))
		// A domain's holds on a member live beside it (see AddHold): the
		// engine refuses to replace or delete a member a live domain holds,
		// and what is left of a removed domain's holds goes with the set.
		member := n
		if strings.HasSuffix(n, holdsSuffix) {
			member = strings.TrimSuffix(n, holdsSuffix)
		}
		if n != SetManifest && (!slices.Contains(m.Members, member) || err != nil || !fi.Mode().IsRegular()) {
			extra = append(extra, n)
		}
	}
	if len(extra) > 0 {
		return nil, &notOurs{reason: "besides vmconv's previous output it holds files vmconv did not write", files: extra}
	}
	return m.Members, nil
}

func entryNames(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names, err
}

func foreign(dir string, err error) error {
	var no *notOurs
	if !errors.As(err, &no) {
		return fault.Wrap(fault.OutputNotWritable, dir, err, "cannot read the output folder %s", dir)
	}
	shown := no.files
	if len(shown) > 5 {
		shown = append(slices.Clip(shown[:5]), fmt.Sprintf("and %d more", len(no.files)-5))
	}
	return fault.New(fault.OutputExists, dir, "the output folder %s already exists and %s", dir, no.reason).
		WithHint("vmconv replaces its output folder as a whole, so it never writes into a folder holding other files. "+
			"Choose a new or empty folder for output.dir, or move the files out of %s.", dir).
		WithFact("Found", strings.Join(shown, ", "))
}

// parkName is a fresh name for the fallback's parked previous set.
func parkName(dir string) string {
	t := filepath.Base(TempName(dir)) // ".<name>.tmp-<pid>-<random>"
	return filepath.Join(filepath.Dir(dir), strings.Replace(t, tmpInfix, parkInfix, 1))
}

// setTempPid parses a set's temporary, ".<base>.tmp-<pid>-<12 hex>", or a
// parked set, ".<base>.vmconv-old-<pid>-<12 hex>". The form is strict so
// that the temporaries of an output called "<base>.tmp-x" are not taken
// for this one's.
func setTempPid(base, name, infix string) (int, bool) {
	rest, ok := strings.CutPrefix(name, "."+base+infix)
	if !ok {
		return 0, false
	}
	pid, random, ok := strings.Cut(rest, "-")
	if !ok || strings.Trim(pid, "0123456789") != "" || len(random) != 12 || strings.Trim(random, "0123456789abcdef") != "" {
		return 0, false
	}
	n, err := strconv.Atoi(pid)
	return n, err == nil && n > 0
}

// recoverParked handles the previous sets that the fallback parked beside
// path and a killed run left there. A parked set is restored when the
// folder is missing (the run died between its two renames, so the new set
// never made it into place) and deleted when the folder holds a set (the
// run died after publishing). Only a lock holder parks, and the caller
// holds the lock, so any parked set is a dead run's, whatever its pid.
func recoverParked(path string, entries []os.DirEntry) (done []string, err error) {
	parent, base := filepath.Dir(path), filepath.Base(path)
	for _, e := range entries {
		if _, ok := setTempPid(base, e.Name(), parkInfix); !ok {
			continue
		}
		park := filepath.Join(parent, e.Name())
		if _, err := setMembers(park); err != nil {
			continue // not a complete set: not vmconv's to decide
		}
		_, serr := os.Lstat(path)
		switch {
		case errors.Is(serr, fs.ErrNotExist):
			if err := os.Rename(park, path); err != nil {
				return done, err
			}
			if err := SyncDir(parent); err != nil {
				return done, err
			}
		case serr == nil:
			if _, err := setMembers(path); err != nil {
				continue // the folder is someone else's now: keep the copy
			}
			discard(path, park)
		default:
			return done, serr
		}
		done = append(done, park)
	}
	return done, nil
}
