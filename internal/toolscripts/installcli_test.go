// Package toolscripts tests the project's shell tools as a user runs them.
package toolscripts

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

const fakeVersion = "9.9.9"

// release is a HashiCorp-style release folder on loopback: the zip, its
// SHA256SUMS and a detached signature of the sums by a key made here.
type release struct {
	srv      *httptest.Server
	keyURL   string
	fpr      string
	files    map[string][]byte
	gnupg    string
	fetched  []string
	zipName  string
	sumsName string
}

func repoRoot(t *testing.T) string {
	_, f, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(f), "..", "..")
}

func gpg(t *testing.T, home string, stdin []byte, args ...string) []byte {
	t.Helper()
	cmd := exec.Command("gpg", append([]string{"--batch", "--homedir", home}, args...)...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("gpg %v: %v: %s", args, err, stderr.String())
	}
	return out
}

// newKey makes a signing key in its own GnuPG home and returns the home,
// the armored public key and the primary key's fingerprint.
func newKey(t *testing.T, uid string) (home string, pub []byte, fpr string) {
	home, err := os.MkdirTemp("", "gpg")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(home) })
	os.Chmod(home, 0o700)
	gpg(t, home, nil, "--passphrase", "", "--quick-gen-key", uid, "ed25519", "sign", "never")
	for _, l := range strings.Split(string(gpg(t, home, nil, "--with-colons", "--fingerprint", uid)), "\n") {
		if f := strings.Split(l, ":"); f[0] == "fpr" && fpr == "" {
			fpr = f[9]
		}
	}
	return home, gpg(t, home, nil, "--armor", "--export", uid), fpr
}

func newRelease(t *testing.T, binary string) *release {
	r := &release{files: map[string][]byte{}}
	var pub []byte
	r.gnupg, pub, r.fpr = newKey(t, "release <release@vmconv.test>")
	var z bytes.Buffer
	zw := zip.NewWriter(&z)
	h := &zip.FileHeader{Name: "terraform", Method: zip.Deflate}
	h.SetMode(0o755)
	w, _ := zw.CreateHeader(h)
	w.Write([]byte(binary))
	zw.Close()
	r.zipName = "terraform_" + fakeVersion + "_linux_amd64.zip"
	r.sumsName = "terraform_" + fakeVersion + "_SHA256SUMS"
	sums := fmt.Sprintf("%x  %s\n%x  terraform_%s_darwin_arm64.zip\n", sha256.Sum256(z.Bytes()), r.zipName, sha256.Sum256(nil), fakeVersion)
	r.files[r.zipName] = z.Bytes()
	r.files[r.sumsName] = []byte(sums)
	r.files[r.sumsName+".sig"] = gpg(t, r.gnupg, []byte(sums), "--detach-sign", "-o", "-")
	r.files["key.asc"] = pub
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		name := filepath.Base(req.URL.Path)
		r.fetched = append(r.fetched, name)
		b, ok := r.files[name]
		if !ok {
			http.NotFound(w, req)
			return
		}
		w.Write(b)
	}))
	t.Cleanup(r.srv.Close)
	r.keyURL = r.srv.URL + "/key.asc"
	return r
}

// installCLI runs tools/install-cli as on a machine with no terraform or
// tofu on the PATH (/usr/local/bin, where this machine has terraform, is
// left out) and no Go module proxy.
func installCLI(t *testing.T, releases, keyURL, fpr string) (cache, bin, out string, err error) {
	cache, bin = t.TempDir(), t.TempDir()
	cmd := exec.Command(filepath.Join(repoRoot(t), "tools", "install-cli"))
	cmd.Env = []string{"PATH=/usr/local/go/bin:/usr/bin:/bin", "HOME=" + t.TempDir(), "GOPROXY=off", "GOFLAGS=",
		"VMCONV_CLI_CACHE=" + cache, "VMCONV_CLI_BIN_DIR=" + bin, "VMCONV_TERRAFORM_VERSION=" + fakeVersion,
		"VMCONV_TERRAFORM_RELEASES=" + releases, "VMCONV_TERRAFORM_KEY_URL=" + keyURL, "VMCONV_TERRAFORM_KEY_FPR=" + fpr}
	b, err := cmd.CombinedOutput()
	return cache, bin, string(b), err
}

func TestInstallCLIFromSignedRelease(t *testing.T) {
	r := newRelease(t, "#!/bin/sh\necho Terraform v"+fakeVersion+"\n")
	cache, bin, out, err := installCLI(t, r.srv.URL, r.keyURL, r.fpr)
	if err != nil {
		t.Fatalf("install-cli: %v\n%s", err, out)
	}
	for _, p := range []string{filepath.Join(bin, "terraform"), filepath.Join(cache, "current", "terraform")} {
		got, err := exec.Command(p, "version").Output()
		if err != nil || !strings.Contains(string(got), "Terraform v"+fakeVersion) {
			t.Errorf("%s version: %q %v", p, got, err)
		}
	}
	// tools/tfcli finds the cached CLI when nothing is on the PATH.
	cmd := exec.Command(filepath.Join(repoRoot(t), "tools", "tfcli"))
	cmd.Env = []string{"PATH=/usr/bin:/bin", "VMCONV_CLI_CACHE=" + cache}
	if got, err := cmd.Output(); err != nil || strings.TrimSpace(string(got)) != filepath.Join(cache, "current", "terraform") {
		t.Errorf("tfcli: %q %v", got, err)
	}
}

// A zip that does not match the signed sums, sums signed by another key
// than the pinned one, and sums whose signature no longer matches are each refused: nothing installed.
func TestInstallCLIRefusesUnverifiedRelease(t *testing.T) {
	for name, spoil := range map[string]func(r *release){
		"tampered zip": func(r *release) { r.files[r.zipName] = append(r.files[r.zipName], 0) },
		// The key URL serving the signer's own key: only the pinned
		// fingerprint tells it apart.
		"other signer": func(r *release) {
			home, pub, _ := newKey(t, "mallory <m@vmconv.test>")
			r.files[r.sumsName+".sig"] = gpg(t, home, r.files[r.sumsName], "--detach-sign", "-o", "-")
			r.files["key.asc"] = pub
		},
		"sums changed after signing": func(r *release) {
			r.files[r.sumsName] = bytes.Replace(r.files[r.sumsName], []byte("darwin"), []byte("DARWIN"), 1)
		},
	} {
		t.Run(name, func(t *testing.T) {
			r := newRelease(t, "#!/bin/sh\necho Terraform\n")
			spoil(r)
			cache, bin, out, err := installCLI(t, r.srv.URL, r.keyURL, r.fpr)
			if err == nil || !strings.Contains(out, "refusing to install") {
				t.Fatalf("install-cli accepted it (%v):\n%s", err, out)
			}
			for _, p := range []string{filepath.Join(bin, "terraform"), filepath.Join(cache, "current")} {
				if _, err := os.Lstat(p); err == nil {
					t.Errorf("%s exists after a refused install", p)
				}
			}
		})
	}
}

// Where HashiCorp's releases can't be reached, install-cli turns to
// OpenTofu from the Go module proxy; with the proxy off too it says so.
// (The build itself, about 13 minutes, is exercised by make test's
// OpenTofu pass, tools/test-opentofu, not here.)
func TestInstallCLIFallsBackToOpenTofu(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close() // a closed port on loopback: unreachable
	_, bin, out, err := installCLI(t, srv.URL, srv.URL+"/key.asc", "0")
	if err == nil || !strings.Contains(out, "releases are out of reach") || !strings.Contains(out, "building OpenTofu") ||
		!strings.Contains(out, "does not serve github.com/opentofu/opentofu") {
		t.Fatalf("install-cli with nothing reachable (%v):\n%s", err, out)
	}
	if ents, _ := os.ReadDir(bin); len(ents) != 0 {
		t.Errorf("%s holds %v", bin, ents)
	}
}

// install-cli --opentofu, which the OpenTofu pass of make test runs, gives
// OpenTofu whatever CLI the machine has: with terraform on the PATH and
// OpenTofu in the cache, it prints the cached binary's path, builds
// nothing, and changes neither the cache's current CLI nor the PATH.
func TestInstallCLIOpenTofuBesideTerraform(t *testing.T) {
	cache, bin, home, path := t.TempDir(), t.TempDir(), t.TempDir(), t.TempDir()
	stub := func(p, line string) {
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte("#!/bin/sh\necho '"+line+"'\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	stub(filepath.Join(path, "terraform"), "Terraform v1.11.0")
	tofu := filepath.Join(cache, "tofu-1.12.6", "tofu")
	stub(tofu, "OpenTofu v1.12.6")
	cmd := exec.Command(filepath.Join(repoRoot(t), "tools", "install-cli"), "--opentofu")
	cmd.Env = []string{"PATH=" + path + ":/usr/bin:/bin", "HOME=" + home, "GOPROXY=off", "GOFLAGS=",
		"VMCONV_CLI_CACHE=" + cache, "VMCONV_CLI_BIN_DIR=" + bin, "VMCONV_TOFU_VERSION=1.12.6"}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || strings.TrimSpace(string(out)) != tofu {
		t.Fatalf("install-cli --opentofu printed %q (%v), want %s:\n%s", out, err, tofu, stderr.String())
	}
	if _, err := os.Lstat(filepath.Join(cache, "current")); err == nil {
		t.Error("install-cli --opentofu made OpenTofu the cache's current CLI")
	}
	if ents, _ := os.ReadDir(bin); len(ents) != 0 {
		t.Errorf("install-cli --opentofu linked %v into the PATH", ents)
	}
}
