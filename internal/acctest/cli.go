package acctest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// ProviderBinary compiles the provider once per test binary and returns the
// folder holding terraform-provider-vmconv, for tests that drive the
// terraform CLI exactly as a user would (saved plans, separate runs).
func ProviderBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		buildDir, buildErr = os.MkdirTemp("", "vmconv-provider-bin-")
		if buildErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", filepath.Join(buildDir, "terraform-provider-vmconv"), ".")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildDir
}

// CLI runs terraform in a working folder against the built provider.
type CLI struct {
	t   *testing.T
	Dir string
	Env []string
}

// NewCLI prepares a working folder with a dev override in a private CLI
// config file, and the given extra environment.
func NewCLI(t *testing.T, extraEnv ...string) *CLI {
	t.Helper()
	bin := ProviderBinary(t)
	dir := t.TempDir()
	rc := filepath.Join(dir, ".terraformrc")
	os.WriteFile(rc, []byte(fmt.Sprintf("provider_installation {\n  dev_overrides {\n    \"vmconv/vmconv\" = %q\n  }\n  direct {}\n}\n", bin)), 0o644)
	env := append(os.Environ(), "TF_CLI_CONFIG_FILE="+rc, "TF_IN_AUTOMATION=1", "CHECKPOINT_DISABLE=1")
	return &CLI{t: t, Dir: dir, Env: append(env, extraEnv...)}
}

// Write writes main.tf.
func (c *CLI) Write(config string) {
	c.t.Helper()
	if err := os.WriteFile(filepath.Join(c.Dir, "main.tf"), []byte(config), 0o644); err != nil {
		c.t.Fatal(err)
	}
}

// Run runs terraform with args and returns combined output and the error.
func (c *CLI) Run(args ...string) (string, error) {
	c.t.Helper()
	tf := os.Getenv("TF_ACC_TERRAFORM_PATH")
	if tf == "" {
		tf = "terraform"
	}
	cmd := exec.Command(tf, append([]string{"-chdir=" + c.Dir}, args...)...)
	cmd.Env = c.Env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// MustRun runs terraform and fails the test on error.
func (c *CLI) MustRun(args ...string) string {
	c.t.Helper()
	out, err := c.Run(args...)
	if err != nil {
		c.t.Fatalf("terraform %v: %v\n%s", args, err, out)
	}
	return out
}

// StateResources returns the values of the state's root-module resources,
// as `terraform show -json` prints them, failing the test when it cannot.
func (c *CLI) StateResources() []map[string]any {
	c.t.Helper()
	var state struct {
		Values struct {
			RootModule struct {
				Resources []struct {
					Values map[string]any `json:"values"`
				} `json:"resources"`
			} `json:"root_module"`
		} `json:"values"`
	}
	if err := json.Unmarshal([]byte(c.MustRun("show", "-json")), &state); err != nil {
		c.t.Fatalf("terraform show -json: %v", err)
	}
	var out []map[string]any
	for _, r := range state.Values.RootModule.Resources {
		out = append(out, r.Values)
	}
	return out
}
