// Package hostconn turns the provider's connection settings into the URI
// libvirt is dialled with, and libvirt's connection errors into faults that
// say what to check.
//
// libvirt's ssh transport runs the ssh client with a cleared environment
// and has no known_hosts parameter of its own, so a pinned known_hosts file
// reaches ssh through a small wrapper named by the URI's command parameter.
// The wrapper and the URI hold file paths only, never key material.
package hostconn

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
)

// Settings are how to reach one libvirt host.
type Settings struct {
	// URI is libvirt's, as the user wrote it.
	URI string
	// KeyFile is the private key for qemu+ssh (libvirt's keyfile).
	KeyFile string
	// KnownHosts pins the host key; empty means ssh's own files.
	KnownHosts string
}

// SSH says whether the URI uses libvirt's ssh transport.
func SSH(uri string) bool {
	u, err := url.Parse(uri)
	return err == nil && strings.HasSuffix(u.Scheme, "+ssh")
}

// Redacted is the URI as the user wrote it, as it may be shown: without a
// password. Its query (socket, keyfile and the like) names files, not
// secrets, and says which socket or key was tried; the ssh wrapper vmconv
// adds is never in it, as this is the user's URI, not the dialled one.
func Redacted(uri string) string {
	u, err := url.Parse(uri)
	if err != nil {
		return "(unparseable URI)"
	}
	if u.User != nil {
		u.User = url.User(u.User.Username())
	}
	return u.String()
}

// Dialable is the URI to hand to libvirt. For ssh it adds keyfile, turns
// off prompts (no_tty: ssh never asks, it fails) and names a wrapper in dir
// that makes ssh check the host key strictly against KnownHosts (or ssh's
// own files). A URI whose query already sets command is left to the user.
func (s Settings) Dialable(dir string) (string, error) {
	u, err := url.Parse(s.URI)
	if err != nil {
		return "", fault.Wrap(fault.InvalidRequest, "", err, "the libvirt URI does not parse").
			WithHint("Write it as libvirt does, for example qemu+ssh://root@kvm1.example/system.")
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			return "", fault.New(fault.InvalidRequest, "", "the libvirt URI %s holds a password", Redacted(s.URI)).
				WithHint("Use key authentication (ssh_key_file); a password in the URI would be stored in state and shown in logs.")
		}
	}
	if !SSH(s.URI) {
		if s.KeyFile != "" || s.KnownHosts != "" {
			return "", fault.New(fault.InvalidRequest, "", "ssh_key_file and ssh_known_hosts_file apply only to qemu+ssh URIs, not %s", Redacted(s.URI))
		}
		return s.URI, nil
	}
	for _, f := range []string{s.KeyFile, s.KnownHosts} {
		if f == "" {
			continue
		}
		if _, err := os.Stat(f); err != nil {
			return "", fault.Wrap(fault.InvalidRequest, f, err, "cannot read the ssh file named in the provider configuration")
		}
	}
	q := u.Query()
	if q.Get("command") != "" {
		if s.KeyFile != "" || s.KnownHosts != "" {
			return "", fault.New(fault.InvalidRequest, "", "the URI %s names its own ssh command, which would ignore ssh_key_file and ssh_known_hosts_file", Redacted(s.URI)).
				WithHint("Drop command= from the URI, or drop ssh_key_file and ssh_known_hosts_file and have your command check the host key.")
		}
		return s.URI, nil
	}
	if s.KeyFile != "" {
		abs, _ := filepath.Abs(s.KeyFile)
		q.Set("keyfile", abs)
	}
	q.Set("no_tty", "1")
	w, err := writeWrapper(dir, s.KnownHosts)
	if err != nil {
		return "", err
	}
	q.Set("command", w)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// writeWrapper writes (once per known_hosts file) the ssh wrapper. Its name
// is derived from its content so concurrent providers share it safely.
func writeWrapper(dir, knownHosts string) (string, error) {
	opts := "-o StrictHostKeyChecking=yes -o BatchMode=yes"
	if knownHosts != "" {
		abs, _ := filepath.Abs(knownHosts)
		opts += " -o UserKnownHostsFile=" + shellQuote(abs) + " -o GlobalKnownHostsFile=/dev/null"
	}
	// Without a reply for a minute the host counts as gone: a dead link
	// fails the apply instead of hanging it.
	opts += " -o ConnectTimeout=30 -o ServerAliveInterval=15 -o ServerAliveCountMax=4"
	body := "#!/bin/sh\n# Written by vmconv: ssh for libvirt's qemu+ssh transport, host key checked strictly.\nexec ssh " + opts + " \"$@\"\n"
	sum := sha256.Sum256([]byte(body))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fault.Wrap(fault.Internal, dir, err, "cannot create the folder for the ssh wrapper")
	}
	// libvirt executes the wrapper: anyone who could replace it could run
	// code as this user, with host keys unchecked.
	if err := private(dir, true); err != nil {
		return "", err
	}
	p := filepath.Join(dir, "ssh-"+hex.EncodeToString(sum[:6]))
	if b, err := os.ReadFile(p); err == nil && string(b) == body && private(p, false) == nil {
		return p, nil
	}
	tmp, err := os.CreateTemp(dir, ".ssh-*")
	if err != nil {
		return "", fault.Wrap(fault.Internal, dir, err, "cannot write the ssh wrapper")
	}
	defer os.Remove(tmp.Name())
	_, werr := tmp.WriteString(body)
	if err := errors.Join(werr, tmp.Chmod(0o700), tmp.Close()); err != nil {
		return "", fault.Wrap(fault.Internal, tmp.Name(), err, "cannot write the ssh wrapper")
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		return "", fault.Wrap(fault.Internal, p, err, "cannot write the ssh wrapper")
	}
	return p, nil
}

// private checks that path is this user's and that nobody else may write
// it (a folder: nor read or enter it).
func private(path string, dir bool) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return fault.Wrap(fault.Internal, path, err, "cannot check the ssh wrapper's folder")
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	mask := os.FileMode(0o022)
	if dir {
		mask = 0o077
	}
	if !ok || int(st.Uid) != os.Geteuid() || fi.Mode().Perm()&mask != 0 || fi.IsDir() != dir || fi.Mode()&os.ModeSymlink != 0 {
		owner := -1
		if ok {
			owner = int(st.Uid)
		}
		return fault.New(fault.InvalidRequest, path, "%s is not private to this user (owner uid %d, mode %s), so the ssh wrapper cannot be trusted there", path, owner, fi.Mode()).
			WithHint("Set the provider's work_dir to a folder only this user can write, or remove %s so vmconv makes it again.", path)
	}
	return nil
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// Unreachable is the fault for a host that could not be dialled: the URI
// (redacted) and what to check, by what libvirt said.
func Unreachable(s Settings, err error) *fault.Error {
	msg := err.Error()
	r := Redacted(s.URI)
	f := fault.Wrap(fault.HypervisorUnreachable, "", err, "cannot connect to libvirt at %s", r).WithFact("URI", r)
	switch {
	case strings.Contains(msg, "Host key verification failed") || strings.Contains(msg, "REMOTE HOST IDENTIFICATION HAS CHANGED"):
		kh := s.KnownHosts
		if kh == "" {
			kh = "ssh's known_hosts files (~/.ssh/known_hosts, /etc/ssh/ssh_known_hosts)"
		}
		f = fault.Wrap(fault.HostKeyMismatch, s.KnownHosts, err, "the host key of %s is not the one in %s", r, kh).WithFact("URI", r).
			WithHint("Check the host's key fingerprint out of band (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub on the host) and add it to the known_hosts file; vmconv never accepts an unknown or changed host key.")
	case strings.Contains(msg, "Permission denied"):
		f = fault.Wrap(fault.AuthFailed, s.KeyFile, err, "%s refused the ssh key", r).WithFact("URI", r).
			WithHint("Check that ssh_key_file (or libvirt's keyfile) is authorized for the user in the URI on the host.")
	case strings.Contains(msg, "Connection refused") || strings.Contains(msg, "No route to host") ||
		strings.Contains(msg, "Could not resolve hostname") || strings.Contains(msg, "timed out"):
		f = f.WithHint("Check that the host is up, that the name and port in the URI are right, and that sshd (for qemu+ssh) or libvirtd listens there: try virsh -c '%s' list.", r)
	case !SSH(s.URI):
		f = f.WithHint("Check that libvirtd is running (tools/setup starts it) and that the provider's uri (or LIBVIRT_DEFAULT_URI) names it.")
	case strings.Contains(msg, "libvirt-sock") || strings.Contains(msg, "virt-ssh-helper") || strings.Contains(msg, "nc:"):
		f = f.WithHint("The host answered but its libvirtd did not: check that libvirtd runs on it and that the user in the URI may use its socket.")
	default:
		f = f.WithHint("Check the URI and that libvirtd runs on the host: try virsh -c '%s' list.", r)
	}
	return f
}

// String describes the settings for logs: the redacted URI and file names.
func (s Settings) String() string {
	return fmt.Sprintf("%s (key file %q, known_hosts %q)", Redacted(s.URI), s.KeyFile, s.KnownHosts)
}
