package engine

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
)

// TestScratchOfKilledRunsIsSwept: the scratch folder of a process that is
// gone (a SIGKILLed provider runs no defers) is removed by the next
// process's first scratch; a live process's and foreign folders stay.
func TestScratchOfKilledRunsIsSwept(t *testing.T) {
	work := t.TempDir()
	c := exec.Command("true")
	if err := c.Run(); err != nil {
		t.Fatal(err)
	}
	dead, live := strconv.Itoa(c.Process.Pid), strconv.Itoa(os.Getppid())
	for name, gone := range map[string]bool{
		"apply-" + dead + "-123":      true,
		"plan-guest-" + dead + "-456": true,
		"boot-" + dead + "-789":       true,
		"apply-" + live + "-123":      false, // another live process's
		"apply-123456":                false, // named before scratch carried a pid
		"mine-" + dead + "-1":         false, // not vmconv's
	} {
		os.MkdirAll(filepath.Join(work, name, "shadow"), 0o755)
		t.Cleanup(func() {
			_, err := os.Stat(filepath.Join(work, name))
			if gone != os.IsNotExist(err) {
				t.Errorf("%s: removed = %v, want %v", name, os.IsNotExist(err), gone)
			}
		})
	}
	e := &Engine{cfg: Config{WorkDir: work}}
	dir, err := e.scratch("apply-")
	if err != nil {
		t.Fatal(err)
	}
	if !scratchName.MatchString(filepath.Base(dir)) {
		t.Errorf("scratch made %s, which a later sweep would not recognise", dir)
	}
}

// TestScratchPrefixesAreSwept keeps the sweep's list of prefixes in step
// with the prefixes the engine uses.
func TestScratchPrefixesAreSwept(t *testing.T) {
	files, _ := filepath.Glob("*.go")
	call := regexp.MustCompile(`\.scratch\("([^"]*)"\)`)
	n := 0
	for _, f := range files {
		b, _ := os.ReadFile(f)
		for _, m := range call.FindAllStringSubmatch(string(b), -1) {
			n++
			if !scratchName.MatchString(m[1] + "1-1") {
				t.Errorf("%s: scratch(%q) is not in scratchName", f, m[1])
			}
		}
	}
	if n < 3 {
		t.Fatalf("found %d scratch calls: the scan is broken", n)
	}
}
