package wintest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestHiveReadsBackWithHivex writes a hive with this package's regf code
// and reads it with hivex (hivexregedit), not with our own code.
func TestHiveReadsBackWithHivex(t *testing.T) {
	if _, err := exec.LookPath("hivexregedit"); err != nil {
		t.Fatal("hivexregedit is required: tools/setup installs libwin-hivex-perl")
	}
	root := &Key{}
	cv := root.Path(`Microsoft\Windows NT\CurrentVersion`)
	cv.SZ("ProductName", "Windows Server 2019 Standard").SZ("CurrentVersion", "6.3").SZ("CurrentBuildNumber", "17763").DWORD("CurrentMajorVersionNumber", 10)
	// Enough subkeys and data to need more than one hive bin.
	for i := 0; i < 300; i++ {
		root.Path(`Classes\Item`+strings.Repeat("x", i%7)+string(rune('A'+i%26))+string(rune('a'+i/26))).SZ("Description", strings.Repeat("d", i))
	}
	p := filepath.Join(t.TempDir(), "SOFTWARE")
	if err := os.WriteFile(p, Hive(root, "SOFTWARE"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("hivexregedit", "--export", "--unsafe-printable-strings", p, `\Microsoft\Windows NT\CurrentVersion`).CombinedOutput()
	if err != nil {
		t.Fatalf("hivexregedit: %v\n%s", err, out)
	}
	for _, want := range []string{`"ProductName"=str(1):"Windows Server 2019 Standard"`, `"CurrentBuildNumber"=str(1):"17763"`, `"CurrentMajorVersionNumber"=dword:0000000a`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("hivex does not read %s:\n%s", want, out)
		}
	}
	all, err := exec.Command("hivexregedit", "--export", p, `\Classes`).CombinedOutput()
	if err != nil || strings.Count(string(all), "[") < 300 {
		t.Errorf("hivex reads %d keys under Classes (%v)", strings.Count(string(all), "["), err)
	}
}
