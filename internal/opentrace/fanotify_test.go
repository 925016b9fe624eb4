package opentrace

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// The watch sees an open by another process, by whatever name it used
// (here a symlink from elsewhere), and names the process's executable; it
// does not report opens of files outside the watched folder.
func TestWatchOpens(t *testing.T) {
	watched, other := t.TempDir(), t.TempDir()
	secret := filepath.Join(watched, "secret")
	os.WriteFile(secret, []byte("s"), 0o600)
	os.WriteFile(filepath.Join(other, "plain"), []byte("p"), 0o600)
	link := filepath.Join(other, "link")
	if err := os.Symlink(secret, link); err != nil {
		t.Fatal(err)
	}
	w := WatchOpens(t, watched)
	cat, err := exec.LookPath("cat")
	if err != nil {
		t.Fatal(err)
	}
	if err := exec.Command(cat, link, filepath.Join(other, "plain")).Run(); err != nil {
		t.Fatal(err)
	}
	opens := w.Stop()
	real, _ := filepath.EvalSymlinks(cat)
	got := By(opens, filepath.Base(real))
	if len(got) != 1 || got[0].Path != secret {
		t.Fatalf("opens by %s: %+v (all: %+v)", real, got, opens)
	}
}
