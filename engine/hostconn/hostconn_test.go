package hostconn

import (
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
)

func TestDialable(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "id")
	kh := filepath.Join(dir, "known hosts") // a space: the wrapper must quote it
	os.WriteFile(key, []byte("k"), 0o600)
	os.WriteFile(kh, []byte("h"), 0o600)

	t.Run("ssh gets the key, no prompts and a strict wrapper", func(t *testing.T) {
		got, err := Settings{URI: "qemu+ssh://root@kvm1:2222/system", KeyFile: key, KnownHosts: kh}.Dialable(filepath.Join(dir, "w"))
		if err != nil {
			t.Fatal(err)
		}
		u, _ := url.Parse(got)
		q := u.Query()
		if q.Get("keyfile") != key || q.Get("no_tty") != "1" || u.Host != "kvm1:2222" || u.Path != "/system" {
			t.Fatalf("dialable URI %s", got)
		}
		w, err := os.ReadFile(q.Get("command"))
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"StrictHostKeyChecking=yes", "BatchMode=yes", "UserKnownHostsFile='" + kh + "'", "GlobalKnownHostsFile=/dev/null"} {
			if !strings.Contains(string(w), want) {
				t.Errorf("wrapper lacks %q:\n%s", want, w)
			}
		}
		again, _ := Settings{URI: "qemu+ssh://root@kvm2/system", KnownHosts: kh}.Dialable(filepath.Join(dir, "w"))
		u2, _ := url.Parse(again)
		if u2.Query().Get("command") != q.Get("command") {
			t.Error("the same known_hosts should share one wrapper")
		}
		if u2.Query().Has("keyfile") {
			t.Error("no key file was set, but the URI names one")
		}
	})
	t.Run("without known_hosts ssh's own files are still strict", func(t *testing.T) {
		got, err := Settings{URI: "qemu+ssh://kvm1/system"}.Dialable(filepath.Join(dir, "w"))
		if err != nil {
			t.Fatal(err)
		}
		u, _ := url.Parse(got)
		w, _ := os.ReadFile(u.Query().Get("command"))
		if !strings.Contains(string(w), "StrictHostKeyChecking=yes") || strings.Contains(string(w), "UserKnownHostsFile") {
			t.Fatalf("wrapper:\n%s", w)
		}
	})
	t.Run("local URIs pass through", func(t *testing.T) {
		if got, err := (Settings{URI: "qemu:///system"}).Dialable(dir); err != nil || got != "qemu:///system" {
			t.Fatalf("%q %v", got, err)
		}
	})
	t.Run("a user's own command is kept", func(t *testing.T) {
		uri := "qemu+ssh://kvm1/system?command=/usr/local/bin/myssh"
		if got, _ := (Settings{URI: uri}).Dialable(dir); got != uri {
			t.Fatalf("%q", got)
		}
	})
	t.Run("the wrapper's folder must be private", func(t *testing.T) {
		open := filepath.Join(dir, "open")
		os.Mkdir(open, 0o777)
		os.Chmod(open, 0o777)
		if _, err := (Settings{URI: "qemu+ssh://kvm1/system"}).Dialable(open); !fault.Is(err, fault.InvalidRequest) {
			t.Fatalf("a world-writable folder was accepted: %v", err)
		}
	})
	t.Run("a wrapper others could change is written again", func(t *testing.T) {
		w := filepath.Join(dir, "w2")
		got, _ := Settings{URI: "qemu+ssh://kvm1/system"}.Dialable(w)
		u, _ := url.Parse(got)
		p := u.Query().Get("command")
		os.Chmod(p, 0o777)
		Settings{URI: "qemu+ssh://kvm1/system"}.Dialable(w)
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o700 {
			t.Fatalf("the wrapper was reused as it was: %v %v", fi.Mode(), err)
		}
	})
	for name, s := range map[string]Settings{
		"command with pinned files": {URI: "qemu+ssh://kvm1/system?command=/bin/myssh", KnownHosts: kh},
		"password in URI":           {URI: "qemu+ssh://root:hunter2@kvm1/system"},
		"ssh files on local URI":    {URI: "qemu:///system", KeyFile: key},
		"missing key file":          {URI: "qemu+ssh://kvm1/system", KeyFile: filepath.Join(dir, "nope")},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := s.Dialable(dir)
			if !fault.Is(err, fault.InvalidRequest) {
				t.Fatalf("want an invalid request, got %v", err)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("the error shows the password: %v", err)
			}
		})
	}
}

func TestRedacted(t *testing.T) {
	for in, want := range map[string]string{
		"qemu+ssh://root:pw@kvm1:22/system?keyfile=/k": "qemu+ssh://root@kvm1:22/system?keyfile=/k",
		"qemu:///system": "qemu:///system",
	} {
		if got := Redacted(in); got != want {
			t.Errorf("Redacted(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestUnreachableLocal(t *testing.T) {
	f := Unreachable(Settings{URI: "qemu+unix:///system?socket=/nonexistent/libvirt-sock"}, errors.New("Failed to connect socket to '/nonexistent/libvirt-sock'"))
	if !strings.Contains(f.Error(), "qemu+unix:///system?socket=/nonexistent/libvirt-sock") || !strings.Contains(f.Hint, "libvirtd is running") {
		t.Fatalf("got %v / %q", f, f.Hint)
	}
}

func TestUnreachable(t *testing.T) {
	s := Settings{URI: "qemu+ssh://root:hunter2@kvm1/system?keyfile=/k", KnownHosts: "/etc/vmconv/known_hosts"}
	for msg, want := range map[string]struct {
		code fault.Code
		hint string
	}{
		"Cannot recv data: Host key verification failed.: Connection reset by peer": {fault.HostKeyMismatch, "known_hosts"},
		"Cannot recv data: ssh: connect to host kvm1 port 22: Connection refused":   {fault.HypervisorUnreachable, "host is up"},
		"Cannot recv data: root@kvm1: Permission denied (publickey).":               {fault.AuthFailed, "authorized"},
		"Cannot recv data: nc: unix connect failed: No such file or directory":      {fault.HypervisorUnreachable, "libvirtd"},
	} {
		f := Unreachable(s, errors.New(msg))
		if f.Code != want.code || !strings.Contains(f.Hint, want.hint) {
			t.Errorf("%q: got %s / %q", msg, f.Code, f.Hint)
		}
		if strings.Contains(f.Error(), "hunter2") {
			t.Errorf("%q: the URI's password is shown: %v", msg, f)
		}
	}
}
