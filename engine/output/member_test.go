package output

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
)

// UpdateMember rewrites a member from its current content, leaves the
// other members and the folder's membership as they were, and refuses a
// name that is not a member or a folder holding a foreign file, changing
// nothing. Its temporary, if its writer is killed, is swept by the next
// holder of the lock.
func TestUpdateMember(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "web")
	if err := writeSet(context.Background(), dir, 1, 4096, SetOptions{}); err != nil {
		t.Fatal(err)
	}
	err := UpdateMember(dir, "report.json", func(old []byte) ([]byte, error) {
		return []byte(strings.Replace(string(old), `"gen": 1`, `"gen": 1, "rerun": true`, 1)), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "report.json")); string(b) != `{"gen": 1, "rerun": true}` {
		t.Errorf("report.json is %s", b)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "disk0.img")); string(b) != string(member(1, 4096)) {
		t.Error("disk0.img changed")
	}
	assertOnly(t, dir, SetManifest, "disk0.img", "report.json")
	if _, err := setMembers(dir); err != nil {
		t.Errorf("after the update the folder is not a set: %v", err)
	}

	if err := UpdateMember(dir, "other.json", func(b []byte) ([]byte, error) { return b, nil }); fault.CodeOf(err) != fault.Internal {
		t.Errorf("a name that is not a member: %v", err)
	}
	boom := errors.New("boom")
	if err := UpdateMember(dir, "report.json", func([]byte) ([]byte, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Errorf("update's error: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o644)
	err = UpdateMember(dir, "report.json", func([]byte) ([]byte, error) { return []byte("{}"), nil })
	if fault.CodeOf(err) != fault.OutputNotWritable {
		t.Errorf("a folder with a foreign file: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "report.json")); string(b) != `{"gen": 1, "rerun": true}` {
		t.Errorf("a refused update changed report.json: %s", b)
	}
	os.Remove(filepath.Join(dir, "notes.txt"))

	// What a writer killed before its rename leaves, named as UpdateMember
	// names it but by a process that is gone, is swept under the lock.
	tmp := TempName(ReportPath(dir))
	dead := strings.Replace(tmp, ".tmp-"+strings.Split(strings.SplitN(tmp, ".tmp-", 2)[1], "-")[0]+"-", ".tmp-999999999-", 1)
	if err := os.WriteFile(dead, []byte("partial"), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := Acquire(dir)
	if err != nil {
		t.Fatal(err)
	}
	removed, err := l.CleanStale()
	l.Release()
	if err != nil || len(removed) != 1 || removed[0] != dead {
		t.Errorf("CleanStale removed %v (%v), want %s", removed, err, dead)
	}
}
