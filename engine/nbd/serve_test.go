package nbd

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// gate is a ReaderAt whose reads block until open is closed, standing in
// for a network round trip that takes its time.
type gate struct {
	open    chan struct{}
	entered chan struct{}
	done    atomic.Bool
}

func (g *gate) ReadAt(p []byte, off int64) (int, error) {
	close(g.entered)
	<-g.open
	g.done.Store(true)
	clear(p)
	return len(p), nil
}

func TestServeStops(t *testing.T) {
	start := func(t *testing.T, r *gate) (string, net.Listener, context.CancelFunc, chan error) {
		sock := filepath.Join(shortDir(t), "s.sock")
		l, err := Listen(sock)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		done := make(chan error, 1)
		go func() { done <- Serve(ctx, l, r, 4096) }()
		return sock, l, cancel, done
	}
	wait := func(t *testing.T, done chan error) {
		t.Helper()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Serve did not return")
		}
	}
	for _, tc := range []struct {
		name string
		stop func(l net.Listener, cancel context.CancelFunc)
	}{
		{"context ends", func(_ net.Listener, cancel context.CancelFunc) { cancel() }},
		{"listener closed", func(l net.Listener, _ context.CancelFunc) { l.Close() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sock, l, cancel, done := start(t, nil)
			idle := dial(t, sock) // mid-handshake, sending nothing
			tc.stop(l, cancel)
			wait(t, done)
			if !idle.closed() {
				t.Error("an open connection outlived Serve")
			}
			if _, err := os.Lstat(sock); !os.IsNotExist(err) {
				t.Errorf("socket file left behind: %v", err)
			}
		})
	}
	t.Run("waits for a read in flight", func(t *testing.T) {
		g := &gate{open: make(chan struct{}), entered: make(chan struct{})}
		sock, _, cancel, done := start(t, g)
		k := dial(t, sock)
		k.start(4096)
		k.request(cmdRead, 1, 0, 512, nil)
		<-g.entered
		cancel()
		select {
		case <-done:
			t.Fatal("Serve returned while the ReaderAt was still in use")
		case <-time.After(300 * time.Millisecond):
		}
		close(g.open)
		wait(t, done)
		if !g.done.Load() {
			t.Fatal("the read never finished")
		}
	})
}

func TestListen(t *testing.T) {
	t.Run("stale socket replaced", func(t *testing.T) {
		sock := filepath.Join(shortDir(t), "s.sock")
		old, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		old.SetUnlinkOnClose(false) // as a killed process leaves it
		old.Close()
		if _, err := os.Lstat(sock); err != nil {
			t.Fatalf("no stale socket to test with: %v", err)
		}
		l, err := Listen(sock)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatalf("dial the new listener: %v", err)
		}
		c.Close()
	})
	t.Run("live socket refused", func(t *testing.T) {
		sock := filepath.Join(shortDir(t), "s.sock")
		live, err := Listen(sock)
		if err != nil {
			t.Fatal(err)
		}
		defer live.Close()
		if err := listenFails(sock); !strings.Contains(err, "another process is listening") {
			t.Fatalf("second Listen: %s", err)
		}
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatalf("the live listener was disturbed: %v", err)
		}
		c.Close()
	})
	t.Run("regular file refused", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "precious")
		os.WriteFile(p, []byte("data"), 0o644)
		if err := listenFails(p); !strings.Contains(err, "not a socket") {
			t.Fatalf("Listen on a regular file: %s", err)
		}
		if b, _ := os.ReadFile(p); string(b) != "data" {
			t.Fatalf("the file was touched: %q", b)
		}
	})
	t.Run("path too long", func(t *testing.T) {
		p := "/tmp/" + strings.Repeat("d", 120) + "/s.sock"
		if err := listenFails(p); !strings.Contains(err, "use a shorter directory") {
			t.Fatalf("Listen on a %d-byte path: %s", len(p), err)
		}
	})
}

// listenFails returns Listen's error text, or "" if it succeeded.
func listenFails(path string) string {
	l, err := Listen(path)
	if err != nil {
		return err.Error()
	}
	l.Close()
	return ""
}

func TestURI(t *testing.T) {
	for _, tc := range []struct{ path, want string }{
		{"/run/vmconv/x.sock", "nbd+unix:///?socket=/run/vmconv/x.sock"},
		{"/tmp/a b&c#d+e%f?g=h", "nbd+unix:///?socket=/tmp/a%20b%26c%23d%2Be%25f%3Fg%3Dh"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			if got := URI(tc.path); got != tc.want {
				t.Fatalf("URI(%q) = %q, want %q", tc.path, got, tc.want)
			}
		})
	}
}
