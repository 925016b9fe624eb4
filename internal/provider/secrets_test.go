package provider_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmconv/terraform-provider-vmconv/internal/acctest"
	"github.com/vmconv/terraform-provider-vmconv/internal/sshdtest"
	"github.com/vmconv/terraform-provider-vmconv/internal/testimg"
	"github.com/vmconv/terraform-provider-vmconv/internal/vcsimtest"
)

// TestAccSecretsScan migrates three remote disks whose credentials are
// secrets (an HTTP bearer token in a write-only header, an ESXi SSH private
// key, a vSphere password) with the real terraform CLI and the provider
// binary, at TRACE logging, and scans everything that persists for them:
// the TRACE log, the state file, the saved plan as JSON, the reports and
// plan files, and the argv of every tool the engine started. The secrets
// come from ephemeral variables (Terraform 1.10+), as the docs advise:
// Terraform itself writes ordinary variables' values into saved plans. The positive
// control is a canary planted where it is allowed to be (a URL query, which
// the state keeps): the scan must find it, or the scan is broken.
func TestAccSecretsScan(t *testing.T) {
	if os.Getenv("TF_ACC") == "" {
		t.Skip("TF_ACC is not set: acceptance tests skipped (make test sets it)")
	}
	acctest.PreCheck(t)
	tf := os.Getenv("TF_ACC_TERRAFORM_PATH")
	work := t.TempDir()
	bin := filepath.Join(work, "bin")
	build := exec.Command("go", "build", "-o", filepath.Join(bin, "terraform-provider-vmconv"), ".")
	build.Dir = acctest.RepoRoot()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	const token, canary = "Bearer tok-SECRET-4d9a71", "CANARY-7f31c0"
	disk, err := testimg.VMDKChain(t.TempDir(), "web", "monolithicSparse", 8*mib, baseLayer)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := os.ReadFile(disk[0])
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != token {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		http.ServeContent(w, r, "web.vmdk", time.Unix(1e9, 0), strings.NewReader(string(body)))
	}))
	defer web.Close()
	sshd := sshdtest.Start(t)
	esxi := t.TempDir()
	os.Chmod(esxi, 0o755)
	if _, err := testimg.VMFSFlat(esxi, "db", 0x1111, 8*mib, baseLayer); err != nil {
		t.Fatal(err)
	}
	vc := vcsimtest.Start(t)
	if _, err := testimg.VMFSFlat(filepath.Join(vc.DatastoreDir("LocalDS_0"), "DC0_H0_VM0"), "disk1", 0x1111, 8*mib, baseLayer); err != nil {
		t.Fatal(err)
	}
	keyLine := strings.Split(strings.TrimSpace(sshd.PrivateKey), "\n")[2]
	secrets := map[string]string{"HTTP token": "tok-SECRET-4d9a71", "SSH private key": keyLine, "vSphere password": vcsimtest.Password}

	out := filepath.Join(work, "out")
	os.MkdirAll(out, 0o755)
	cfgDir := filepath.Join(work, "tf")
	os.MkdirAll(cfgDir, 0o755)
	os.WriteFile(filepath.Join(cfgDir, "main.tf"), []byte(fmt.Sprintf(`
terraform {
  required_providers {
    vmconv = { source = "vmconv/vmconv" }
  }
}

variable "token" {
  type      = string
  sensitive = true
  ephemeral = true
}

variable "ssh_key" {
  type      = string
  sensitive = true
  ephemeral = true
}

variable "vsphere_password" {
  type      = string
  sensitive = true
  ephemeral = true
}

provider "vmconv" {
  vsphere_username = %q
  vsphere_password = var.vsphere_password
  cache_dir        = %q
}

resource "vmconv_disk_conversion" "http" {
  source {
    url {
      href    = %q
      headers = { Authorization = var.token }
    }
  }
  output { path = %q }
  plan_path = %q
  fixes { enabled = false }
  boot_test { enabled = false }
}

resource "vmconv_disk_conversion" "esxi" {
  source {
    esxi_ssh {
      host        = %q
      user        = %q
      private_key = var.ssh_key
      host_key    = %q
      path        = %q
    }
  }
  output { path = %q }
  plan_path = %q
  fixes { enabled = false }
  boot_test { enabled = false }
}

resource "vmconv_disk_conversion" "vsphere" {
  source {
    vsphere {
      url        = %q
      datacenter = "DC0"
      vm         = "DC0_H0_VM0"
      thumbprint = %q
    }
  }
  output { path = %q }
  plan_path = %q
  fixes { enabled = false }
  boot_test { enabled = false }
}
`, vcsimtest.User, filepath.Join(work, "cache"),
		web.URL+"/web.vmdk?tag="+canary, filepath.Join(out, "http.qcow2"), filepath.Join(out, "http.plan.json"),
		sshd.Addr, sshd.User, sshd.HostKey, filepath.Join(esxi, "db.vmdk"), filepath.Join(out, "esxi.qcow2"), filepath.Join(out, "esxi.plan.json"),
		vc.URL, vc.Thumbprint, filepath.Join(out, "vsphere.qcow2"), filepath.Join(out, "vsphere.plan.json"))), 0o644)
	os.WriteFile(filepath.Join(work, "terraformrc"), []byte(fmt.Sprintf("provider_installation {\n  dev_overrides {\n    \"vmconv/vmconv\" = %q\n  }\n  direct {}\n}\n", bin)), 0o644)
	logPath, argvPath := filepath.Join(work, "trace.log"), filepath.Join(work, "argv.jsonl")
	env := append(os.Environ(), "TF_CLI_CONFIG_FILE="+filepath.Join(work, "terraformrc"), "TF_IN_AUTOMATION=1", "TF_LOG=TRACE", "TF_LOG_PATH="+logPath,
		"VMCONV_ARGV_LOG="+argvPath, "TF_VAR_token="+token, "TF_VAR_ssh_key="+sshd.PrivateKey, "TF_VAR_vsphere_password="+vcsimtest.Password)
	tfRun := func(args ...string) string {
		cmd := exec.Command(tf, append([]string{"-chdir=" + cfgDir}, args...)...)
		cmd.Env = env
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("terraform %s: %v\n%s", args[0], err, b)
		}
		return string(b)
	}
	tfRun("plan", "-input=false", "-out=tfplan")
	planJSON := tfRun("show", "-json", "tfplan")
	tfRun("apply", "-input=false", "tfplan")
	t.Cleanup(func() { tfRun("destroy", "-input=false", "-auto-approve") })

	read := func(p string) string {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		return string(b)
	}
	scanned := map[string]string{
		"the TRACE log":   read(logPath),
		"the state file":  read(filepath.Join(cfgDir, "terraform.tfstate")),
		"the plan JSON":   planJSON,
		"the tools' argv": read(argvPath),
	}
	for _, kind := range []string{"http", "esxi", "vsphere"} {
		scanned[kind+" report"] = read(filepath.Join(out, kind+".qcow2.vmconv.json"))
		scanned[kind+" plan file"] = read(filepath.Join(out, kind+".plan.json"))
	}
	// The positive control: the canary is in the state (the URL with its
	// query is the configuration), so the scan can see what is there.
	if !strings.Contains(scanned["the state file"], canary) || !strings.Contains(scanned["the plan JSON"], canary) {
		t.Fatal("the scan did not find the planted canary: it cannot be trusted")
	}
	if !strings.Contains(scanned["the tools' argv"], "qemu-img") || len(scanned["the TRACE log"]) < 10000 {
		t.Fatal("the argv log or the TRACE log is empty: nothing was scanned")
	}
	for where, text := range scanned {
		for what, secret := range secrets {
			if strings.Contains(text, secret) {
				t.Errorf("the %s appears in %s", what, where)
			}
		}
	}
}
