package wintest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestPEIsWhatFileSays checks the PE with file(1), which libguestfs uses
// for a Windows guest's architecture.
func TestPEIsWhatFileSays(t *testing.T) {
	for machine, want := range map[uint16]string{0x8664: "x86-64", 0x14c: "Intel 80386"} {
		p := filepath.Join(t.TempDir(), "cmd.exe")
		os.WriteFile(p, PE(machine), 0o644)
		out, err := exec.Command("file", "-b", p).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "PE32") || !strings.Contains(string(out), want) {
			t.Errorf("file says %q for machine %#x: %v", out, machine, err)
		}
	}
}
