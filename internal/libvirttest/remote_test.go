package libvirttest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	lv "libvirt.org/go/libvirt"
)

// TestRemoteHost uses the host the way the product will: over h.URI with the
// libvirt binding. A volume written over the connection exists inside the
// host's namespace and nowhere on the runner's side, and a wrong host key or
// a closed port fail to connect.
func TestRemoteHost(t *testing.T) {
	h := Start(t)
	conn, err := lv.NewConnect(h.URI)
	if err != nil {
		t.Fatalf("connecting to %s: %v", h.URI, err)
	}
	defer conn.Close()
	pool, err := conn.LookupStoragePoolByName(h.Pool)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Free()
	if active, err := pool.IsActive(); err != nil || !active {
		t.Fatalf("pool %s active = %v, %v", h.Pool, active, err)
	}
	if x, err := pool.GetXMLDesc(0); err != nil || !strings.Contains(x, "<path>"+h.PoolPath+"</path>") {
		t.Fatalf("pool %s does not have target %s: %v\n%s", h.Pool, h.PoolPath, err, x)
	}

	// A raw volume whose content goes up a stream, as a converted disk would.
	const size = 1 << 20
	content := bytes.Repeat([]byte("vmconv-remote!\n"), size/15+1)[:size]
	vol, err := pool.StorageVolCreateXML(fmt.Sprintf(`<volume><name>probe.img</name><capacity>%d</capacity><target><format type='raw'/></target></volume>`, size), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer vol.Free()
	st, err := conn.NewStream(0)
	if err != nil {
		t.Fatal(err)
	}
	if err := vol.Upload(st, 0, size, 0); err != nil {
		t.Fatal(err)
	}
	for sent := 0; sent < size; {
		n, err := st.Send(content[sent:])
		if err != nil {
			t.Fatal(err)
		}
		sent += n
	}
	if err := st.Finish(); err != nil {
		t.Fatal(err)
	}
	st.Free()
	path, err := vol.GetPath()
	if err != nil {
		t.Fatal(err)
	}
	if path != filepath.Join(h.PoolPath, "probe.img") {
		t.Fatalf("volume path %s, want it in %s", path, h.PoolPath)
	}

	// Inside the host: there, with the content sent.
	if _, err := h.Exec(t, "test", "-f", path); err != nil {
		t.Fatalf("the volume is not on the remote host: %v", err)
	}
	got, err := h.Exec(t, "cat", path)
	if err != nil || !bytes.Equal(got, content) {
		t.Fatalf("the remote volume holds %d bytes, not the %d sent (%v)", len(got), size, err)
	}
	if out := h.Virsh(t, "vol-list", h.Pool); !strings.Contains(out, "probe.img") {
		t.Fatalf("virsh vol-list %s in the namespace does not list probe.img:\n%s", h.Pool, out)
	}

	// There the pool is the namespace's tmpfs, not a directory on a disk the
	// runner shares.
	if m, ok := topMountIn(fmt.Sprintf("/proc/%d/mountinfo", h.pid), h.PoolPath); !ok || m.source != nsSourcePrefix+h.id {
		t.Fatalf("on the remote host %s is not the namespace's tmpfs: %+v", h.PoolPath, m)
	}

	// On the runner: not there, and the path cannot be written.
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the runner sees %s: %v", path, err)
	}
	err = os.WriteFile(filepath.Join(h.PoolPath, "local.img"), []byte("x"), 0o644)
	if !errors.Is(err, syscall.EROFS) {
		t.Fatalf("writing into the runner's view of the pool: %v, want EROFS", err)
	}
	h.RunnerViewUntouched(t)

	// A domain starts there (virtlogd takes its log); cleanup destroys it.
	dom, err := conn.DomainCreateXML(probeDomain, 0)
	if err != nil {
		t.Fatalf("starting a domain on the remote host: %v", err)
	}
	dom.Free()
	if out := h.Virsh(t, "list", "--name"); !strings.Contains(out, "libvirttest-probe") {
		t.Fatalf("the domain does not run on the remote host:\n%s", out)
	}

	// Wrong host key: ssh refuses before libvirt says a word.
	wrapper := filepath.Join(t.TempDir(), "ssh-wrong")
	script := fmt.Sprintf("#!/bin/sh\nexec ssh -F none -o UserKnownHostsFile=%s -o StrictHostKeyChecking=yes -o BatchMode=yes \"$@\"\n", h.WrongKnownHosts)
	if err := os.WriteFile(wrapper, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	wrong := fmt.Sprintf("%s?keyfile=%s&command=%s&no_tty=1", h.BareURI, h.KeyFile, wrapper)
	if c, err := lv.NewConnect(wrong); err == nil {
		c.Close()
		t.Fatalf("connected to %s with a wrong host key", wrong)
	} else if !strings.Contains(err.Error(), "Host key verification failed") {
		t.Fatalf("connecting with a wrong host key: %v, want Host key verification failed", err)
	}

	// Nothing listening.
	closed := UnreachableURI(t) + "?no_tty=1"
	if c, err := lv.NewConnect(closed); err == nil {
		c.Close()
		t.Fatalf("connected to %s", closed)
	} else if !strings.Contains(err.Error(), "Connection refused") {
		t.Fatalf("connecting to %s: %v, want Connection refused", closed, err)
	}
}

// TestCleanup checks that a host leaves nothing behind: no process in its
// namespace (libvirtd, virtlogd, sshd, a domain's qemu), no runner-side
// mount, no directory.
func TestCleanup(t *testing.T) {
	var h *Host
	t.Run("host", func(t *testing.T) {
		h = Start(t)
		startProbe(t, h)
	})
	assertGone(t, h)
}

// probeDomain boots nothing: SeaBIOS finds no disk and waits.
const probeDomain = `<domain type='qemu'><name>libvirttest-probe</name><memory unit='MiB'>32</memory>
<os><type arch='x86_64'>hvm</type></os><devices/></domain>`

// startProbe starts probeDomain with virsh inside the namespace.
func startProbe(t testing.TB, h *Host) {
	t.Helper()
	x := filepath.Join(h.dir, "probe.xml")
	if err := os.WriteFile(x, []byte(probeDomain), 0o644); err != nil {
		t.Fatal(err)
	}
	h.Virsh(t, "create", x)
}

func assertGone(t *testing.T, h *Host) {
	t.Helper()
	if left := nsProcesses([]byte(" - tmpfs " + nsSourcePrefix + h.id + " ")); len(left) > 0 {
		t.Errorf("processes %v are still in remote host %s's namespace", left, h.id)
	}
	if _, ok := topMount(h.PoolPath); ok {
		t.Errorf("%s is still mounted", h.PoolPath)
	}
	if _, err := os.Stat(h.dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s is still there: %v", h.dir, err)
	}
	for _, d := range []*daemon{h.libvirtd, h.virtlogd, h.sshd} {
		if err := syscall.Kill(d.cmd.Process.Pid, 0); err == nil {
			t.Errorf("%s (pid %d) still runs", d.cmd.Path, d.cmd.Process.Pid)
		}
	}
}

const crashEnv = "LIBVIRTTEST_CRASH_CHILD"

// TestSweepAfterCrash kills a test process that holds a host with a running
// domain, before its cleanup can run. Its daemons die with it; the next Start
// (here sweepStale, which Start calls) removes the domain's qemu, the
// runner-side mount and the directory.
func TestSweepAfterCrash(t *testing.T) {
	if os.Getenv(crashEnv) != "" {
		h := Start(t)
		startProbe(t, h)
		fmt.Printf("HOST %s %d %d %d\n", h.id, h.libvirtd.cmd.Process.Pid, h.virtlogd.cmd.Process.Pid, h.sshd.cmd.Process.Pid)
		time.Sleep(time.Hour)
		return
	}
	child := exec.Command(os.Args[0], "-test.run=^TestSweepAfterCrash$", "-test.count=1")
	child.Env = append(os.Environ(), crashEnv+"=1")
	child.Stderr = os.Stderr
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { child.Process.Kill(); child.Wait() }()
	var id string
	var pids [3]int
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if _, err := fmt.Sscanf(sc.Text(), "HOST %s %d %d %d", &id, &pids[0], &pids[1], &pids[2]); err == nil {
			break
		}
	}
	if id == "" {
		t.Fatal("the child test process did not start a host")
	}
	dir := filepath.Join(baseDir, id)
	mark := []byte(" - tmpfs " + nsSourcePrefix + id + " ")
	child.Process.Kill()
	child.Wait()
	// SIGKILL skips every cleanup.
	deadline := time.Now().Add(10 * time.Second)
	for _, pid := range pids {
		for syscall.Kill(pid, 0) == nil && !zombie(pid) {
			if time.Now().After(deadline) {
				t.Fatalf("daemon %d outlived its killed test process", pid)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if left := nsProcesses(mark); len(left) == 0 {
		t.Fatal("no qemu outlived the killed test process: the sweep has nothing to prove")
	}
	if _, ok := topMount(filepath.Join(dir, "pool")); !ok {
		t.Fatal("the runner-side mount did not outlive the killed test process: the sweep has nothing to prove")
	}

	sweepStale(t)
	if left := nsProcesses(mark); len(left) > 0 {
		t.Errorf("processes %v are still in the crashed host's namespace", left)
	}
	if _, ok := topMount(filepath.Join(dir, "pool")); ok {
		t.Errorf("%s/pool is still mounted", dir)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s is still there: %v", dir, err)
	}
}

func zombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	i := bytes.LastIndexByte(b, ')')
	return i > 0 && len(b) > i+2 && b[i+2] == 'Z'
}
