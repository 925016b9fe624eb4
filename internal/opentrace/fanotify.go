package opentrace

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Watch records, from the kernel (fanotify permission events, always
// allowed), every open of a file in the
// watched folders by any process, with the opener's executable. Unlike
// strace it never stops the processes it watches: a TCG qemu under strace
// runs many times slower (the appliance's fixes took over 40 minutes), so
// the emulators are watched this way and qemu-img, which is quick, is
// traced (Wrap), which also sees the opens that failed.
type Watch struct {
	fd   int
	stop chan struct{}
	done chan struct{}

	mu    sync.Mutex
	opens []Opened
}

// Opened is one open the kernel reported.
type Opened struct {
	Path string // where the opened file is now
	Pid  int
	Exe  string // the opener's executable, "" if it exited before it was read
}

// WatchOpens watches the files directly inside dirs (by inode: whatever
// name or link the opener used) until Stop. It needs CAP_SYS_ADMIN (the
// tests run as root).
func WatchOpens(t testing.TB, dirs ...string) *Watch {
	t.Helper()
	// Permission events hold the opener until answered, so its executable
	// can be read even when it exits right after the open.
	fd, err := unix.FanotifyInit(unix.FAN_CLASS_CONTENT|unix.FAN_CLOEXEC|unix.FAN_NONBLOCK, unix.O_RDONLY|unix.O_LARGEFILE)
	if err != nil {
		t.Fatalf("fanotify_init (the watch needs root): %v", err)
	}
	for _, d := range dirs {
		if err := unix.FanotifyMark(fd, unix.FAN_MARK_ADD, unix.FAN_OPEN_PERM|unix.FAN_EVENT_ON_CHILD, unix.AT_FDCWD, d); err != nil {
			unix.Close(fd)
			t.Fatalf("fanotify_mark %s: %v", d, err)
		}
	}
	w := &Watch{fd: fd, stop: make(chan struct{}), done: make(chan struct{})}
	go w.loop()
	t.Cleanup(func() { w.Stop() })
	return w
}

func (w *Watch) loop() {
	defer close(w.done)
	buf := make([]byte, 64<<10)
	for {
		fds := []unix.PollFd{{Fd: int32(w.fd), Events: unix.POLLIN}}
		unix.Poll(fds, 100)
		n, err := unix.Read(w.fd, buf)
		if n > 0 {
			w.parse(buf[:n])
			continue
		}
		if err != nil && err != unix.EAGAIN && err != unix.EINTR {
			return
		}
		select {
		case <-w.stop:
			return
		default:
		}
	}
}

// parse reads struct fanotify_event_metadata records: event_len (u32),
// vers, reserved (u8), metadata_len (u16), mask (u64), fd, pid (s32).
func (w *Watch) parse(b []byte) {
	for len(b) >= 24 {
		n := int(binary.NativeEndian.Uint32(b[0:]))
		if n < 24 || n > len(b) {
			return
		}
		fd := int(int32(binary.NativeEndian.Uint32(b[16:])))
		pid := int(int32(binary.NativeEndian.Uint32(b[20:])))
		if fd >= 0 {
			p, _ := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
			exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
			// struct fanotify_response: the fd and FAN_ALLOW.
			var resp [8]byte
			binary.NativeEndian.PutUint32(resp[0:], uint32(int32(fd)))
			binary.NativeEndian.PutUint32(resp[4:], unix.FAN_ALLOW)
			unix.Write(w.fd, resp[:])
			unix.Close(fd)
			w.mu.Lock()
			w.opens = append(w.opens, Opened{Path: p, Pid: pid, Exe: exe})
			w.mu.Unlock()
		}
		b = b[n:]
	}
}

// Stop ends the watch, after the events already queued are read, and
// returns every open it saw.
func (w *Watch) Stop() []Opened {
	select {
	case <-w.stop:
	default:
		time.Sleep(200 * time.Millisecond) // let queued events arrive
		close(w.stop)
		<-w.done
		unix.Close(w.fd)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Opened(nil), w.opens...)
}

// By lists the opens made by executables named base (qemu-system-x86_64).
func By(opens []Opened, base string) []Opened {
	var out []Opened
	for _, o := range opens {
		if filepath.Base(o.Exe) == base {
			out = append(out, o)
		}
	}
	return out
}
