// Package libvirttest runs a second, real libvirt host on this machine for
// the tests of remote KVM hosts (vmconv issue 13). Its libvirtd lives in a
// mount namespace of its own and is reachable only as qemu+ssh:// through a
// real sshd on loopback. The storage pool's directory is a tmpfs that only
// that namespace sees; the test process sees an empty read-only tmpfs at the
// same path. A test can so prove that no byte of a volume went through the
// runner's view of the pool's path: a local write fails with EROFS, a local
// read finds nothing, and RunnerViewUntouched checks the view afterwards.
//
// Everything of one instance lives under /var/lib/vmconv-remote/<id>, a path
// without characters that URIs or sshd_config would need quoted. Inside the
// namespace libvirtd uses the usual /run/libvirt, /etc/libvirt and
// /var/{lib,cache,log}/libvirt, each a private tmpfs, so two instances (say,
// two test binaries run in parallel) and the machine's own libvirtd do not
// see each other. It needs root, as the acceptance tests have.
package libvirttest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// PoolName is the storage pool every Host defines.
const PoolName = "vmconv"

const (
	// baseDir holds one directory per instance.
	baseDir = "/var/lib/vmconv-remote"
	// runnerViewSource names the runner side's read-only tmpfs in
	// /proc/self/mountinfo.
	runnerViewSource = "vmconv-runner-view"
	// nsSourcePrefix plus the instance id names the namespace's tmpfs
	// mounts; a process whose mountinfo shows that name is in the namespace.
	nsSourcePrefix = "vmconv-remote-"
	// cmdTimeout bounds each virsh and nsenter call: the machine is slow and
	// shared, but nothing here should take minutes.
	cmdTimeout = 2 * time.Minute
)

// Host is a running remote libvirt host.
type Host struct {
	// URI is ready to use: it pins the server's host key through a wrapper
	// around ssh (the command= parameter), since libvirt's ssh transport
	// clears the environment and has no known_hosts parameter.
	// qemu+ssh://root@127.0.0.1:PORT/system?keyfile=...&command=...&no_tty=1
	URI string
	// BareURI has no query, for code that adds its own ssh settings:
	// qemu+ssh://root@127.0.0.1:PORT/system
	BareURI string
	// KeyFile is the authorized client private key (mode 0600).
	KeyFile string
	// KnownHosts holds the server's host key as "[127.0.0.1]:PORT ...".
	KnownHosts string
	// WrongKnownHosts holds a different key for the same host.
	WrongKnownHosts string
	// Pool is the name of the started dir pool, PoolName.
	Pool string
	// PoolPath is the pool's target directory on the host. The test process
	// sees an empty read-only tmpfs there.
	PoolPath string
	// Addr is sshd's address, 127.0.0.1:PORT.
	Addr string

	id       string
	dir      string
	pid      int // libvirtd's, the namespace's anchor
	libvirtd *daemon
	virtlogd *daemon
	sshd     *daemon
}

// daemon is a process this package started and waits for.
type daemon struct {
	cmd  *exec.Cmd
	done chan struct{} // closed after Wait returned
}

// Start runs a remote host until the test ends. At t.Cleanup it destroys the
// host's running domains, stops sshd, virtlogd and libvirtd, kills whatever
// else still runs in the namespace, unmounts the runner's view and removes
// the instance's directory; it does so however far Start got. The daemons
// get SIGKILL if the test process dies without cleaning up, and the next
// Start sweeps what such an instance left (its domains' qemu, its mounts).
func Start(t testing.TB) *Host {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("libvirttest needs root: mount namespaces, libvirtd and sshd")
	}
	for _, tool := range []string{"unshare", "nsenter", "virsh", "ssh", "ssh-keygen", "/usr/sbin/libvirtd", "/usr/sbin/virtlogd", "/usr/sbin/sshd"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("libvirttest needs %s: tools/setup installs libvirt-daemon-system and openssh-server (%v)", tool, err)
		}
	}
	sweepStale(t)

	id := randomID(t)
	h := &Host{id: id, dir: filepath.Join(baseDir, id), Pool: PoolName}
	h.PoolPath = filepath.Join(h.dir, "pool")
	// o+x all the way down: the host's qemu runs as libvirt-qemu and opens
	// volumes under PoolPath.
	if err := os.MkdirAll(h.PoolPath, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(baseDir, 0o755)
	t.Cleanup(func() { h.stop(t) })
	if err := writeOwner(h.dir); err != nil {
		t.Fatal(err)
	}

	began := time.Now()
	h.startLibvirtd(t)
	h.startVirtlogd(t)
	h.Virsh(t, "pool-define-as", PoolName, "dir", "--target", h.PoolPath)
	h.Virsh(t, "pool-start", PoolName)
	h.mountRunnerView(t)
	h.writeKeys(t)
	h.startSSHD(t)
	h.checkReachable(t)
	t.Logf("libvirttest: remote host %s up in %s, pool %s at %s", h.BareURI, time.Since(began).Round(10*time.Millisecond), PoolName, h.PoolPath)
	return h
}

// nsScript builds the namespace and becomes its libvirtd; $1 is the
// instance id, $2 the pool path, $3 the pidfile.
const nsScript = `set -e
for d in /run/libvirt /var/lib/libvirt /var/cache/libvirt /var/log/libvirt /etc/libvirt; do
	mkdir -p "$d"
	mount -t tmpfs -o mode=0755 "vmconv-remote-$1" "$d"
done
# tmpfs takes memory only for what is written
mount -t tmpfs -o mode=0755,size=12g "vmconv-remote-$1" "$2"
mkdir -p /etc/libvirt/qemu/networks /var/lib/libvirt/qemu /var/cache/libvirt/qemu /var/log/libvirt/qemu
: >/etc/libvirt/libvirtd.conf
: >/etc/libvirt/qemu.conf
: >/etc/libvirt/virtlogd.conf
exec /usr/sbin/libvirtd -p "$3"
`

func (h *Host) startLibvirtd(t testing.TB) {
	t.Helper()
	log := filepath.Join(h.dir, "libvirtd.log")
	pidfile := filepath.Join(h.dir, "libvirtd.pid")
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", nsScript, "sh", h.id, h.PoolPath, pidfile)
	// unshare and sh exec in place, so this process becomes libvirtd; it
	// dies with the test process.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	h.libvirtd = startLogged(t, cmd, log)
	h.pid = cmd.Process.Pid
	waitFor(t, h.libvirtd, log, "libvirtd", func() bool {
		b, err := os.ReadFile(pidfile)
		if err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(h.pid) {
			return false
		}
		_, err = h.Exec(t, "test", "-S", "/run/libvirt/libvirt-sock")
		return err == nil
	})
}

// startVirtlogd runs virtlogd in the namespace: libvirtd's qemu driver hands
// each domain's console log to it. Started by this process rather than
// daemonized, it dies with the test process like the others.
func (h *Host) startVirtlogd(t testing.TB) {
	t.Helper()
	log := filepath.Join(h.dir, "virtlogd.log")
	cmd := h.nsCommand(context.Background(), "/usr/sbin/virtlogd", "-p", filepath.Join(h.dir, "virtlogd.pid"))
	h.virtlogd = startLogged(t, cmd, log)
	waitFor(t, h.virtlogd, log, "virtlogd", func() bool {
		_, err := h.Exec(t, "test", "-S", "/run/libvirt/virtlogd-sock")
		return err == nil
	})
}

// mountRunnerView covers PoolPath on the runner's side with an empty
// read-only tmpfs, after the namespace took its own copy of the mount table.
func (h *Host) mountRunnerView(t testing.TB) {
	t.Helper()
	if err := syscall.Mount(runnerViewSource, h.PoolPath, "tmpfs", syscall.MS_RDONLY|syscall.MS_NOSUID|syscall.MS_NODEV|syscall.MS_NOEXEC, "size=1m,mode=0555"); err != nil {
		t.Fatalf("mounting the runner's read-only view on %s: %v", h.PoolPath, err)
	}
}

// writeKeys makes sshd's host key, the client key, both known_hosts files
// and the pinning wrapper. The port is not known yet; the known_hosts files
// are written by startSSHD.
func (h *Host) writeKeys(t testing.TB) {
	t.Helper()
	ssh := filepath.Join(h.dir, "ssh")
	if err := os.Mkdir(ssh, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"host_ed25519", "client_ed25519", "other_ed25519"} {
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "libvirttest", "-f", filepath.Join(ssh, name)).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v: %s", err, out)
		}
	}
	h.KeyFile = filepath.Join(ssh, "client_ed25519")
	h.KnownHosts = filepath.Join(ssh, "known_hosts")
	h.WrongKnownHosts = filepath.Join(ssh, "known_hosts.wrong")
}

func (h *Host) startSSHD(t testing.TB) {
	t.Helper()
	ssh := filepath.Join(h.dir, "ssh")
	os.MkdirAll("/run/sshd", 0o755) // privilege separation directory
	cfg := filepath.Join(ssh, "sshd_config")
	log := filepath.Join(h.dir, "sshd.log")
	// The port is free when chosen, but another process may take it before
	// sshd binds it; try a few.
	for attempt := 1; ; attempt++ {
		port := freePort(t)
		os.WriteFile(cfg, []byte(fmt.Sprintf(`ListenAddress 127.0.0.1
Port %d
HostKey %s
AuthorizedKeysFile %s
PidFile %s
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
`, port, filepath.Join(ssh, "host_ed25519"), h.KeyFile+".pub", filepath.Join(h.dir, "sshd.pid"))), 0o600)
		// sshd runs in the namespace, so its sessions (libvirt's remote
		// helper) reach the namespace's /run/libvirt.
		cmd := h.nsCommand(context.Background(), "/usr/sbin/sshd", "-D", "-e", "-f", cfg)
		h.sshd = startLogged(t, cmd, log)
		h.Addr = fmt.Sprintf("127.0.0.1:%d", port)
		up := waitUntil(h.sshd, func() bool {
			c, err := net.DialTimeout("tcp", h.Addr, time.Second)
			if err == nil {
				c.Close()
			}
			return err == nil
		})
		if up {
			h.writeClientFiles(t, port)
			return
		}
		b, _ := os.ReadFile(log)
		h.sshd.stop()
		h.sshd = nil
		if attempt == 3 || !bytes.Contains(b, []byte("Address already in use")) {
			t.Fatalf("sshd did not start:\n%s", b)
		}
	}
}

func (h *Host) writeClientFiles(t testing.TB, port int) {
	t.Helper()
	ssh := filepath.Join(h.dir, "ssh")
	for file, key := range map[string]string{h.KnownHosts: "host_ed25519.pub", h.WrongKnownHosts: "other_ed25519.pub"} {
		pub, err := os.ReadFile(filepath.Join(ssh, key))
		if err != nil {
			t.Fatal(err)
		}
		line := fmt.Sprintf("[127.0.0.1]:%d %s", port, pub)
		if err := os.WriteFile(file, []byte(line), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// libvirt runs this instead of ssh, with ssh's arguments and a cleared
	// environment; -F none keeps the machine's ssh_config out of it.
	wrapper := filepath.Join(ssh, "ssh-pinned")
	script := fmt.Sprintf("#!/bin/sh\nexec ssh -F none -o UserKnownHostsFile=%s -o StrictHostKeyChecking=yes -o BatchMode=yes \"$@\"\n", h.KnownHosts)
	if err := os.WriteFile(wrapper, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	h.BareURI = fmt.Sprintf("qemu+ssh://root@127.0.0.1:%d/system", port)
	h.URI = fmt.Sprintf("%s?keyfile=%s&command=%s&no_tty=1", h.BareURI, h.KeyFile, wrapper)
}

// checkReachable lists the pool over URI once, so a broken kit fails here
// with sshd's log rather than later in the test that uses it.
func (h *Host) checkReachable(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "virsh", "-c", h.URI, "-q", "pool-list", "--name")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || !strings.Contains(string(out), PoolName) {
		log, _ := os.ReadFile(filepath.Join(h.dir, "sshd.log"))
		t.Fatalf("virsh -c %s pool-list: %v: %s%s\nsshd log:\n%s", h.URI, err, out, stderr.String(), log)
	}
}

// Virsh runs virsh inside the host's namespace against its libvirtd
// (qemu:///system there), not over ssh. It fails the test on error and
// returns stdout.
func (h *Host) Virsh(t testing.TB, args ...string) string {
	t.Helper()
	out, err := h.Exec(t, "virsh", append([]string{"-c", "qemu:///system"}, args...)...)
	if err != nil {
		t.Fatalf("virsh %s on the remote host: %v", strings.Join(args, " "), err)
	}
	return string(out)
}

// Exec runs a command inside the host's namespace, where PoolPath holds the
// pool's files (say, qemu-img info on a volume), for assertions. It returns
// stdout; the error carries stderr and wraps the *exec.ExitError.
func (h *Host) Exec(t testing.TB, name string, args ...string) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := h.nsCommand(ctx, name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%s %s in the remote host's namespace: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// RunnerViewUntouched fails the test unless the runner's side of PoolPath is
// still the empty read-only tmpfs Start mounted there.
func (h *Host) RunnerViewUntouched(t testing.TB) {
	t.Helper()
	m, ok := topMount(h.PoolPath)
	if !ok || m.source != runnerViewSource || m.fstype != "tmpfs" {
		t.Fatalf("the runner's view of %s is no longer the %s tmpfs (top mount: %+v)", h.PoolPath, runnerViewSource, m)
	}
	if !m.readOnly {
		t.Fatalf("the runner's view of %s was remounted read-write: %+v", h.PoolPath, m)
	}
	entries, err := os.ReadDir(h.PoolPath)
	if err != nil {
		t.Fatalf("reading the runner's view of %s: %v", h.PoolPath, err)
	}
	if len(entries) != 0 {
		names := make([]string, len(entries))
		for i, e := range entries {
			names[i] = e.Name()
		}
		t.Fatalf("the runner's view of %s is not empty: %v", h.PoolPath, names)
	}
}

// UnreachableURI returns qemu+ssh://root@127.0.0.1:PORT/system (no query)
// for a loopback port where nothing listens: connecting fails with
// "Connection refused". The port stays bound, without listening, until the
// test ends, so no other process can take it meanwhile.
func UnreachableURI(t testing.TB) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("qemu+ssh://root@127.0.0.1:%d/system", sa.(*syscall.SockaddrInet4).Port)
}

func (h *Host) nsCommand(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "nsenter", append([]string{"-t", strconv.Itoa(h.pid), "-m", "--", name}, args...)...)
	// nsenter execs in place: a daemon started this way dies with the test
	// process.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

// startLogged starts cmd with its output appended to log.
func startLogged(t testing.TB, cmd *exec.Cmd, log string) *daemon {
	t.Helper()
	f, err := os.OpenFile(log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("starting %s: %v", cmd.Path, err)
	}
	d := &daemon{cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); f.Close(); close(d.done) }()
	return d
}

// waitUntil polls ready for up to a minute; false if d exits first or time
// runs out.
func waitUntil(d *daemon, ready func() bool) bool {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if ready() {
			return true
		}
		select {
		case <-d.done:
			return false
		case <-time.After(100 * time.Millisecond):
		}
	}
	return false
}

func waitFor(t testing.TB, d *daemon, log, what string, ready func() bool) {
	t.Helper()
	if !waitUntil(d, ready) {
		b, _ := os.ReadFile(log)
		t.Fatalf("%s did not start in the remote host's namespace:\n%s", what, b)
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func randomID(t testing.TB) string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// Volumes lists the pool's volume names as virsh sorts them, read inside
// the namespace.
func (h *Host) Volumes(t testing.TB) []string {
	t.Helper()
	var names []string
	for _, l := range strings.Split(h.Virsh(t, "vol-list", "--pool", h.Pool), "\n")[2:] {
		if f := strings.Fields(l); len(f) > 0 {
			names = append(names, f[0])
		}
	}
	return names
}
