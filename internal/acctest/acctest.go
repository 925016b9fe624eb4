// Package acctest holds what the provider's acceptance tests share: the
// in-process provider factory, pre-checks and custom checks.
package acctest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"

	"github.com/vmconv/terraform-provider-vmconv/internal/guestfsenv"
	"github.com/vmconv/terraform-provider-vmconv/internal/provider"
)

// ProviderFactories serves the provider in-process to the terraform CLI.
var ProviderFactories = map[string]func() (tfprotov6.ProviderServer, error){
	"vmconv": providerserver.NewProtocol6WithError(provider.New("test")()),
}

// PreCheck fails the test when the tools acceptance tests drive are absent.
// Tests do not skip in CI: a missing tool is a broken environment.
func PreCheck(t *testing.T) {
	t.Helper()
	if os.Getenv("TF_ACC") == "" {
		return // resource.Test skips without TF_ACC and says so
	}
	for _, tool := range []string{"qemu-img", "qemu-io"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is required; run tools/setup: %v", tool, err)
		}
	}
	if os.Getenv("TF_ACC_TERRAFORM_PATH") == "" {
		p, err := exec.LookPath("terraform")
		if err != nil {
			p, err = exec.LookPath("tofu")
		}
		if err != nil {
			t.Fatal("a Terraform-compatible CLI is required: set TF_ACC_TERRAFORM_PATH, or run tools/setup, which installs one")
		}
		// Process-wide on purpose: parallel tests may not use t.Setenv.
		os.Setenv("TF_ACC_TERRAFORM_PATH", p)
	}
}

// HCLString quotes s for HCL.
func HCLString(s string) string {
	return fmt.Sprintf("%q", s)
}

// SHA256File hashes a file.
func SHA256File(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// DirSums hashes every regular file under dir, to prove a source untouched.
func DirSums(dir string) (string, error) {
	var names []string
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			names = append(names, p)
		}
		return err
	})
	if err != nil {
		return "", err
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		s, err := SHA256File(n)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "%s %s\n", s, n)
	}
	return b.String(), nil
}

// SharedTempDir returns a test folder QEMU can read when libvirt runs it as
// another user: under /var/tmp, world-readable, removed after the test.
func SharedTempDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("/var/tmp", "vmconv-test-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(d, 0o755)
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// GuestFile reads one file from a guest image through libguestfs (guestfish
// in read-only mode), for checks that must not trust vmconv's own code.
func GuestFile(image, path string) (string, error) {
	cmd := exec.Command("guestfish", "--ro", "-a", image, "-i", "cat", path)
	cmd.Env = guestfsenv.Env()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("guestfish cat %s: %v: %s", path, err, out)
	}
	return string(out), nil
}

// GuestChecksums returns the sha256 of each regular file in paths inside a
// guest image, "" for a path that is not a regular file, from one read-only
// guestfish session.
func GuestChecksums(image string, paths []string) (map[string]string, error) {
	var script strings.Builder
	for _, p := range paths {
		fmt.Fprintf(&script, "is-file %q\n-checksum sha256 %q\n", p, p)
	}
	cmd := exec.Command("guestfish", "--ro", "-a", image, "-i")
	cmd.Stdin = strings.NewReader(script.String())
	cmd.Env = guestfsenv.Env()
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("guestfish: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	sums := map[string]string{}
	i := 0
	for _, p := range paths {
		if i >= len(lines) {
			return nil, fmt.Errorf("guestfish output ended early at %s:\n%s", p, out)
		}
		isFile := lines[i] == "true"
		i++
		if isFile {
			if i >= len(lines) {
				return nil, fmt.Errorf("no checksum for %s", p)
			}
			sums[p] = lines[i]
			i++
		} else {
			sums[p] = ""
		}
	}
	return sums, nil
}
