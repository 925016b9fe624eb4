package output

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
)

// TestRemoveSet: a whole set goes, with the files named beside it and its
// lock file; whatever is not only a set is refused untouched.
func TestRemoveSet(t *testing.T) {
	for _, tc := range []struct {
		name   string
		before func(t *testing.T, parent, dir string)
		says   string // "" when it is deleted
	}{
		{name: "a set", before: func(t *testing.T, _, dir string) { previous(t, dir) }},
		{name: "nothing there", before: func(*testing.T, string, string) {}},
		{name: "a set a killed fallback publish parked", before: func(t *testing.T, parent, dir string) {
			previous(t, dir)
			os.Rename(dir, filepath.Join(parent, ".web.vmconv-old-"+deadPid(t)+"-0123456789ab"))
		}},
		{name: "a set with a file the user added", says: "notes.txt", before: func(t *testing.T, _, dir string) {
			previous(t, dir)
			os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o644)
		}},
		{name: "a folder without a manifest", says: SetManifest, before: func(t *testing.T, _, dir string) {
			os.Mkdir(dir, 0o755)
			os.WriteFile(filepath.Join(dir, "disk0.img"), []byte("mine"), 0o644)
		}},
		{name: "an empty folder", says: SetManifest, before: func(t *testing.T, _, dir string) { os.Mkdir(dir, 0o755) }},
		{name: "a file", says: "not a folder", before: func(t *testing.T, _, dir string) { os.WriteFile(dir, []byte("disk"), 0o644) }},
		{name: "a link to a set", says: "symbolic link", before: func(t *testing.T, parent, dir string) {
			previous(t, filepath.Join(parent, "real"))
			os.Symlink("real", dir)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			dir := filepath.Join(parent, "web")
			log := dir + ".boot-test.log"
			os.WriteFile(log, []byte("console"), 0o644)
			tc.before(t, parent, dir)
			was := snapshot(t, parent)
			err := RemoveSet(dir, log)
			if tc.says != "" {
				fe, _ := fault.As(err)
				if fe == nil || fe.Code != fault.OutputExists || fe.File != dir || fe.Hint == "" ||
					!strings.Contains(fe.Error()+fmtFacts(fe), tc.says) {
					t.Fatalf("got %v, want a refusal about %s saying %q", err, dir, tc.says)
				}
				if now := snapshot(t, parent); !mapsEqual(now, was) {
					t.Fatalf("the refusal changed the folder:\nbefore %v\nafter  %v", was, now)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			// No set, no parked copy, no boot log, no lock file.
			if es, _ := os.ReadDir(parent); len(es) != 0 {
				t.Fatalf("left behind: %v", es)
			}
			if err := RemoveSet(dir, log); err != nil {
				t.Errorf("deleting again: %v", err)
			}
		})
	}
	if err := RemoveSet(filepath.Join(t.TempDir(), "no", "web")); err != nil {
		t.Errorf("a folder whose parent is gone: %v", err)
	}
}

// TestRemoveSetRefusesWhileWritten: a set another run is writing is not
// deleted under it.
func TestRemoveSetRefusesWhileWritten(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "web")
	previous(t, dir)
	was := snapshot(t, dir)
	s, err := BeginSet(dir, SetOptions{Replace: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Abort()
	if err := RemoveSet(dir); !fault.Is(err, fault.OutputLocked) {
		t.Fatalf("got %v, want the lock refused", err)
	}
	if now := snapshot(t, dir); !mapsEqual(now, was) {
		t.Fatalf("the set changed:\nbefore %v\nafter  %v", was, now)
	}
}

func fmtFacts(fe *fault.Error) string {
	var b strings.Builder
	for _, f := range fe.Facts {
		b.WriteString(f.Label + ": " + f.Value + "\n")
	}
	return b.String()
}
