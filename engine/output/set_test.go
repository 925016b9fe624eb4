package output

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
)

// A set in these tests is two disks' worth: "disk0.img" (large in the
// kill tests) and "report.json", both derived from a generation number so
// that a set found on disk tells which run wrote it and whether it is whole.

func member(gen, size int) []byte {
	b := bytes.Repeat([]byte(fmt.Sprintf("gen %08d ", gen)), size/13+1)
	return b[:size]
}

func report(gen int) []byte { return []byte(fmt.Sprintf(`{"gen": %d}`, gen)) }

// writeSet publishes generation gen at dir through the API, as a caller
// does, with extra member names beyond the two.
func writeSet(ctx context.Context, dir string, gen, size int, opts SetOptions, extra ...string) error {
	s, err := BeginSet(dir, opts)
	if err != nil {
		return err
	}
	defer s.Abort()
	files := map[string][]byte{"disk0.img": member(gen, size), "report.json": report(gen)}
	for _, n := range extra {
		files[n] = []byte(n)
	}
	for n, b := range files {
		p, err := s.Path(n)
		if err != nil {
			return err
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return err
		}
	}
	return s.Commit(ctx)
}

// setGen reads which generation the set at dir is and checks it is whole:
// the manifest lists exactly the members present, and every member holds
// that generation's bytes.
func setGen(dir string, size int) (int, error) {
	b, err := os.ReadFile(filepath.Join(dir, SetManifest))
	if err != nil {
		return 0, err
	}
	var m manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return 0, err
	}
	if want := []string{"disk0.img", "report.json"}; !slices.Equal(m.Members, want) {
		return 0, fmt.Errorf("manifest lists %v, want %v", m.Members, want)
	}
	names, _ := entryNames(dir)
	if want := []string{SetManifest, "disk0.img", "report.json"}; !slices.Equal(names, want) {
		return 0, fmt.Errorf("the folder holds %v, want %v", names, want)
	}
	var r struct{ Gen int }
	rb, _ := os.ReadFile(filepath.Join(dir, "report.json"))
	if err := json.Unmarshal(rb, &r); err != nil {
		return 0, fmt.Errorf("report.json: %v", err)
	}
	d, _ := os.ReadFile(filepath.Join(dir, "disk0.img"))
	if !bytes.Equal(d, member(r.Gen, size)) {
		return 0, fmt.Errorf("disk0.img (%d bytes) is not generation %d's (the report's): a mix of two sets", len(d), r.Gen)
	}
	return r.Gen, nil
}

func mustGen(t *testing.T, dir string, size, want int) {
	t.Helper()
	got, err := setGen(dir, size)
	if err != nil {
		t.Fatalf("the set at %s: %v", dir, err)
	}
	if got != want {
		t.Fatalf("the set at %s is generation %d, want %d", dir, got, want)
	}
}

// assertOnly checks the folder holds exactly these names: no temporary, no
// parked set, no lock file.
func assertOnly(t *testing.T, folder string, want ...string) {
	t.Helper()
	names, _ := entryNames(folder)
	if !slices.Equal(names, want) {
		t.Fatalf("%s holds %v, want %v", folder, names, want)
	}
}

// withoutExchange makes the exchange fail as on a file system without
// RENAME_EXCHANGE, for the rest of the test.
func withoutExchange(t *testing.T) {
	saved := exchange
	exchange = func(a, b string) error { return &os.LinkError{Op: "renameat2", Old: a, New: b, Err: unix.EINVAL} }
	t.Cleanup(func() { exchange = saved })
}

func TestSetCommit(t *testing.T) {
	for _, tc := range []struct {
		name     string
		fallback bool
		before   func(t *testing.T, dir string) // what is at dir before
		opts     SetOptions
	}{
		{name: "into a new folder"},
		{name: "into an empty folder", before: func(t *testing.T, dir string) { os.Mkdir(dir, 0o755) }},
		{name: "over a previous set", opts: SetOptions{Replace: true}, before: previous},
		{name: "over a previous set without exchange", fallback: true, opts: SetOptions{Replace: true}, before: previous},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.fallback {
				withoutExchange(t)
			}
			parent := t.TempDir()
			dir := filepath.Join(parent, "web")
			if tc.before != nil {
				tc.before(t, dir)
			}
			if err := writeSet(context.Background(), dir, 2, 4096, tc.opts); err != nil {
				t.Fatal(err)
			}
			mustGen(t, dir, 4096, 2) // also: disk1.img of the previous set is gone
			assertOnly(t, parent, "web")
		})
	}
}

// previous publishes generation 1 with a member generation 2 lacks.
func previous(t *testing.T, dir string) {
	if err := writeSet(context.Background(), dir, 1, 4096, SetOptions{}, "disk1.img"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "disk1.img")); err != nil {
		t.Fatal(err)
	}
}

// snapshot records a folder tree byte for byte (names, types, contents,
// link targets) to prove a refusal touched nothing.
func snapshot(t *testing.T, root string) map[string]string {
	t.Helper()
	m := map[string]string{}
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			m[p] = "link " + target
		case d.IsDir():
			m[p] = "dir"
		default:
			b, _ := os.ReadFile(p)
			m[p] = "file " + string(b)
		}
		return nil
	})
	return m
}

func TestSetRefusesWhatIsNotItsOwn(t *testing.T) {
	for _, tc := range []struct {
		name   string
		before func(t *testing.T, parent, dir string)
		opts   SetOptions
		code   fault.Code
		says   string
	}{
		{name: "a folder with the user's files", code: fault.OutputExists, says: "vmconv did not write", opts: SetOptions{Replace: true},
			before: func(t *testing.T, _, dir string) {
				os.MkdirAll(filepath.Join(dir, "photos"), 0o755)
				os.WriteFile(filepath.Join(dir, "photos", "cat.jpg"), []byte("meow"), 0o644)
				os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o644)
			}},
		{name: "a previous set with a file the user added", code: fault.OutputExists, says: "notes.txt", opts: SetOptions{Replace: true},
			before: func(t *testing.T, _, dir string) {
				previous(t, dir)
				os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o644)
			}},
		{name: "a folder with a corrupt manifest", code: fault.OutputExists, says: SetManifest, opts: SetOptions{Replace: true},
			before: func(t *testing.T, _, dir string) {
				os.Mkdir(dir, 0o755)
				os.WriteFile(filepath.Join(dir, SetManifest), []byte("{"), 0o644)
			}},
		{name: "a previous set, replace not allowed", code: fault.OutputExists, says: "does not manage",
			before: func(t *testing.T, _, dir string) { previous(t, dir) }},
		{name: "a file", code: fault.OutputExists, says: "is a file", opts: SetOptions{Replace: true},
			before: func(t *testing.T, _, dir string) { os.WriteFile(dir, []byte("disk"), 0o644) }},
		{name: "a link to a previous set", code: fault.OutputExists, says: "symbolic link", opts: SetOptions{Replace: true},
			before: func(t *testing.T, parent, dir string) {
				previous(t, filepath.Join(parent, "real"))
				os.Symlink("real", dir)
			}},
		{name: "a dangling link", code: fault.OutputExists, says: "symbolic link",
			before: func(t *testing.T, _, dir string) { os.Symlink("nowhere", dir) }},
		{name: "no parent folder", code: fault.OutputDirMissing, says: "does not exist",
			before: func(t *testing.T, parent, dir string) { os.Remove(parent) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent := filepath.Join(t.TempDir(), "out")
			os.Mkdir(parent, 0o755)
			dir := filepath.Join(parent, "web")
			tc.before(t, parent, dir)
			was := snapshot(t, filepath.Dir(parent))
			s, err := BeginSet(dir, tc.opts)
			if err == nil {
				s.Abort()
				t.Fatal("not refused")
			}
			fe, _ := fault.As(err)
			if fe == nil || fe.Code != tc.code || fe.File != dir || !strings.Contains(err.Error()+fmt.Sprint(fe.Facts), tc.says) || fe.Hint == "" {
				t.Fatalf("got %#v, want code %s about %s saying %q, with a hint", err, tc.code, dir, tc.says)
			}
			if now := snapshot(t, filepath.Dir(parent)); !mapsEqual(now, was) {
				t.Fatalf("the refusal changed the folder:\nbefore %v\nafter  %v", was, now)
			}
		})
	}
}

// TestSetRefusesAMountPoint: a rename cannot replace a mount point, and an
// empty one looks like a folder vmconv may fill.
func TestSetRefusesAMountPoint(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "web")
	os.Mkdir(dir, 0o755)
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("cannot mount a tmpfs here (needs root): %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, 0) })
	s, err := BeginSet(dir, SetOptions{Replace: true})
	if err == nil {
		s.Abort()
		t.Fatal("not refused")
	}
	if fe, _ := fault.As(err); fe == nil || fe.Code != fault.OutputExists || !strings.Contains(fe.Msg, "mount point") || fe.Hint == "" {
		t.Fatalf("got %#v", err)
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestSetRefusesAFolderMadeDuringTheWrite: a user's folder that appears at
// dir while the members are written is refused at Commit, and kept.
func TestSetRefusesAFolderMadeDuringTheWrite(t *testing.T) {
	for _, tc := range []struct {
		name   string
		before func(t *testing.T, dir string)
	}{
		{name: "where there was none"},
		{name: "in place of a previous set", before: previous},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			dir := filepath.Join(parent, "web")
			if tc.before != nil {
				tc.before(t, dir)
			}
			s, err := BeginSet(dir, SetOptions{Replace: true})
			if err != nil {
				t.Fatal(err)
			}
			p, _ := s.Path("disk0.img")
			os.WriteFile(p, []byte("new"), 0o644)
			os.RemoveAll(dir)
			os.Mkdir(dir, 0o755)
			os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o644)
			was := snapshot(t, dir)
			if err := s.Commit(context.Background()); !fault.Is(err, fault.OutputExists) {
				t.Fatalf("Commit: got %v, want output_exists", err)
			}
			s.Abort()
			if now := snapshot(t, dir); !mapsEqual(now, was) {
				t.Fatalf("the user's folder changed: %v", now)
			}
			assertOnly(t, parent, "web")
		})
	}
}

// TestSetRefusesAFolderSwappedInAtTheLastMoment: a user's folder that
// replaces the previous set between Commit's check and its exchange (or
// park) is swapped (or moved) back and kept, not deleted as the old set.
func TestSetRefusesAFolderSwappedInAtTheLastMoment(t *testing.T) {
	for _, noExchange := range []bool{false, true} {
		t.Run("no exchange "+strconv.FormatBool(noExchange), func(t *testing.T) {
			parent := t.TempDir()
			dir := filepath.Join(parent, "web")
			previous(t, dir)
			s, err := BeginSet(dir, SetOptions{Replace: true})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Abort()
			p, _ := s.Path("disk0.img")
			os.WriteFile(p, []byte("new"), 0o644)
			var was map[string]string
			saved := exchange
			t.Cleanup(func() { exchange = saved })
			exchange = func(a, b string) error {
				if was == nil { // the first call, Commit's
					os.RemoveAll(dir)
					os.Mkdir(dir, 0o755)
					os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o644)
					was = snapshot(t, dir)
				}
				if noExchange {
					return &os.LinkError{Op: "renameat2", Old: a, New: b, Err: unix.EINVAL}
				}
				return saved(a, b)
			}
			if err := s.Commit(context.Background()); !fault.Is(err, fault.OutputExists) {
				t.Fatalf("Commit: got %v, want output_exists", err)
			}
			s.Abort()
			if now := snapshot(t, dir); !mapsEqual(now, was) {
				t.Fatalf("the user's folder changed:\nbefore %v\nafter  %v", was, now)
			}
			assertOnly(t, parent, "web")
		})
	}
}

func TestSetAbortLeavesNothing(t *testing.T) {
	for _, old := range []bool{false, true} {
		t.Run(fmt.Sprintf("previous set %v", old), func(t *testing.T) {
			parent := t.TempDir()
			dir := filepath.Join(parent, "web")
			if old {
				previous(t, dir)
			}
			was := snapshot(t, parent)
			s, err := BeginSet(dir, SetOptions{Replace: true})
			if err != nil {
				t.Fatal(err)
			}
			p, _ := s.Path("disk0.img")
			if err := os.WriteFile(p, member(2, 1<<20), 0o644); err != nil {
				t.Fatal(err)
			}
			s.Abort()
			s.Abort() // idempotent
			if now := snapshot(t, parent); !mapsEqual(now, was) {
				t.Fatalf("Abort left changes:\nbefore %v\nafter  %v", was, now)
			}
		})
	}
}

func TestSetCommitChecksItsMembers(t *testing.T) {
	for _, tc := range []struct {
		name  string
		write func(s *Set) error
	}{
		{"a member never written", func(s *Set) error { _, err := s.Path("disk1.img"); return err }},
		{"a file that is not a member", func(s *Set) error { return os.WriteFile(filepath.Join(s.tmp, "stray"), nil, 0o644) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			dir := filepath.Join(parent, "web")
			s, err := BeginSet(dir, SetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			p, _ := s.Path("disk0.img")
			os.WriteFile(p, []byte("x"), 0o644)
			if err := tc.write(s); err != nil {
				t.Fatal(err)
			}
			if err := s.Commit(context.Background()); err == nil {
				t.Fatal("committed")
			}
			s.Abort()
			assertOnly(t, parent)
		})
	}
}

func TestSetMemberNames(t *testing.T) {
	s, err := BeginSet(filepath.Join(t.TempDir(), "web"), SetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Abort()
	for name, ok := range map[string]bool{
		"disk0.qcow2": true, "web-disk1.raw": true,
		"": false, ".": false, "..": false, "../x": false, "a/b": false, SetManifest: false, ".hidden": false,
	} {
		t.Run(name, func(t *testing.T) {
			p, err := s.Path(name)
			if ok != (err == nil) {
				t.Fatalf("Path(%q) = %q, %v", name, p, err)
			}
			if ok && filepath.Dir(p) != s.tmp {
				t.Fatalf("Path(%q) = %q, outside the temporary folder", name, p)
			}
		})
	}
}

// TestSetSweep: BeginSet removes what dead writers left beside the folder,
// keeps a live writer's, and puts back a previous set that a run killed
// between the fallback's two renames had parked.
func TestSetSweep(t *testing.T) {
	dead, live := deadPid(t), strconv.Itoa(os.Getpid())
	for _, tc := range []struct {
		name    string
		entry   string // a folder holding a complete set (generation 7)
		dirGen  int    // generation at dir before, 0: no dir
		gone    bool   // entry removed
		wantGen int    // generation at dir after
	}{
		{name: "a dead writer's temporary", entry: ".web.tmp-" + dead + "-0123456789ab", gone: true},
		{name: "a live writer's temporary", entry: ".web.tmp-" + live + "-0123456789ab"},
		{name: "not a temporary's name", entry: ".web.tmp-" + dead + "-xyz"},
		{name: "another output's", entry: ".web2.tmp-" + dead + "-0123456789ab"},
		{name: "a parked set, the new one not in place", entry: ".web.vmconv-old-" + dead + "-0123456789ab", gone: true, wantGen: 7},
		{name: "a parked set, the new one in place", entry: ".web.vmconv-old-" + dead + "-0123456789ab", dirGen: 8, gone: true, wantGen: 8},
		{name: "a parked set, a live pid's", entry: ".web.vmconv-old-" + live + "-0123456789ab", gone: true, wantGen: 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			dir := filepath.Join(parent, "web")
			if tc.dirGen > 0 { // first: its BeginSet would sweep the entry
				if err := writeSet(context.Background(), dir, tc.dirGen, 4096, SetOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			if err := writeSet(context.Background(), filepath.Join(parent, "seven"), 7, 4096, SetOptions{}); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(filepath.Join(parent, "seven"), filepath.Join(parent, tc.entry)); err != nil {
				t.Fatal(err)
			}
			s, err := BeginSet(dir, SetOptions{Replace: true})
			if err != nil {
				t.Fatal(err)
			}
			s.Abort()
			if _, err := os.Stat(filepath.Join(parent, tc.entry)); (err == nil) == tc.gone {
				t.Fatalf("%s: removed = %v, want %v", tc.entry, err != nil, tc.gone)
			}
			if tc.wantGen > 0 {
				mustGen(t, dir, 4096, tc.wantGen)
			} else if _, err := os.Lstat(dir); err == nil {
				t.Fatal("the sweep made a folder at dir")
			}
		})
	}
}

// TestSetReplaceIsNeverAbsent watches the folder while sets replace each
// other: with the exchange, some set is at dir at every instant. (Deleting
// the old folder before renaming the new one fails this at once.)
func TestSetReplaceIsNeverAbsent(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "web")
	ctx := context.Background()
	if err := writeSet(ctx, dir, 0, 4096, SetOptions{}); err != nil {
		t.Fatal(err)
	}
	var stop, looks, misses atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for stop.Load() == 0 {
			if _, err := os.Lstat(filepath.Join(dir, SetManifest)); err != nil {
				misses.Add(1)
			}
			looks.Add(1)
		}
	}()
	for gen := 1; gen <= 60; gen++ {
		if err := writeSet(ctx, dir, gen, 4096, SetOptions{Replace: true}); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(1)
	<-done
	if misses.Load() > 0 || looks.Load() < 100 {
		t.Fatalf("no set at %s in %d of %d looks", dir, misses.Load(), looks.Load())
	}
	mustGen(t, dir, 4096, 60)
	assertOnly(t, parent, "web")
}

// TestCommitDirIsNeverAbsent is the same for CommitDir (the hive backups).
func TestCommitDirIsNeverAbsent(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "web.qcow2.vmconv-hives")
	var stop, looks, misses atomic.Int64
	done := make(chan struct{})
	for i := 0; i <= 60; i++ {
		tmp := TempName(dir)
		os.Mkdir(tmp, 0o755)
		if err := os.WriteFile(filepath.Join(tmp, "SYSTEM.orig"), []byte(strconv.Itoa(i)), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := CommitDir(tmp, dir); err != nil {
			t.Fatal(err)
		}
		if i == 0 { // a previous folder exists from now on
			go func() {
				defer close(done)
				for stop.Load() == 0 {
					if _, err := os.Lstat(filepath.Join(dir, "SYSTEM.orig")); err != nil {
						misses.Add(1)
					}
					looks.Add(1)
				}
			}()
		}
	}
	stop.Store(1)
	<-done
	if misses.Load() > 0 || looks.Load() < 100 {
		t.Fatalf("no folder at %s in %d of %d looks", dir, misses.Load(), looks.Load())
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "SYSTEM.orig")); string(b) != "60" {
		t.Fatalf("SYSTEM.orig = %q, want the last run's", b)
	}
	assertOnly(t, parent, filepath.Base(dir))
}

func TestCommitDirWithoutExchange(t *testing.T) {
	withoutExchange(t)
	parent := t.TempDir()
	dir := filepath.Join(parent, "hives")
	for i := range 2 {
		tmp := TempName(dir)
		os.Mkdir(tmp, 0o755)
		os.WriteFile(filepath.Join(tmp, fmt.Sprintf("H%d.orig", i)), nil, 0o644)
		if err := CommitDir(tmp, dir); err != nil {
			t.Fatal(err)
		}
	}
	assertOnly(t, dir, "H1.orig")
	assertOnly(t, parent, "hives")
}

// TestExchangeIsSupportedHere keeps the tests above honest: if this file
// system lacked RENAME_EXCHANGE, they would be testing the fallback twice.
func TestExchangeIsSupportedHere(t *testing.T) {
	d := t.TempDir()
	a, b := filepath.Join(d, "a"), filepath.Join(d, "b")
	os.Mkdir(a, 0o755)
	os.WriteFile(b, nil, 0o644)
	if err := exchange(a, b); err != nil {
		t.Fatalf("RENAME_EXCHANGE on %s: %v", d, err)
	}
	if fi, err := os.Lstat(b); err != nil || !fi.IsDir() {
		t.Fatalf("not exchanged: %v", err)
	}
}
