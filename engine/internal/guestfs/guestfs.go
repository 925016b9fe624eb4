// Package guestfs is the engine's cgo leaf over libguestfs: it opens a disk
// in the libguestfs appliance and implements guest.Session. Nothing else in
// the engine links against libguestfs.
//
// libguestfs calls block in C and ignore Go contexts, so a watchdog kills
// the appliance when the context ends. The appliance is started through a
// small wrapper that records qemu's pid before exec'ing it, because the
// handle cannot be queried while Launch holds it.
package guestfs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	lg "libguestfs.org/guestfs"

	"github.com/vmconv/terraform-provider-vmconv/engine/guest"
)

// Options configure an appliance.
type Options struct {
	// Drive is the disk image to open, Format its qemu format.
	Drive, Format string
	// Drives, when set instead, are every disk of one guest, in the order
	// the guest had them: the appliance names them sda, sdb... in that
	// order, which is how a guest's own /dev/sdX names are resolved.
	Drives   []Drive
	ReadOnly bool
	// TCG forces software emulation (nested KVM that hangs guests).
	TCG bool
	// MemoryMiB for the appliance; initramfs tools need room.
	MemoryMiB int
	// WorkDir holds the hypervisor wrapper and its pid file.
	WorkDir string
	// Qemu is the hypervisor binary.
	Qemu string
}

// Drive is one disk image and its qemu format.
type Drive struct{ Path, Format string }

// Session is an open appliance.
type Session struct {
	g       *lg.Guestfs
	mu      sync.Mutex
	pidFile string
	// link is the short path of the hypervisor wrapper, if it needed one.
	link   string
	done   chan struct{}
	killed chan struct{}
	once   sync.Once
	ctx    context.Context
	// inspected is set once inspect_os has run: libguestfs answers
	// questions about a root only after it.
	inspected bool
	// prof is the time spent in each kind of call, in first-call order.
	prof []guest.CallStat
}

var (
	_ guest.Session  = (*Session)(nil)
	_ guest.Registry = (*Session)(nil)
	_ guest.Summer   = (*Session)(nil)
)

// Open launches an appliance on the drive. The context bounds the whole
// session: when it ends the appliance is killed and pending calls fail.
func Open(ctx context.Context, o Options) (*Session, error) {
	if o.MemoryMiB == 0 {
		o.MemoryMiB = 1024
	}
	if o.Qemu == "" {
		o.Qemu = "qemu-system-x86_64"
	}
	qemu, err := lookPath(o.Qemu)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.WorkDir, 0o755); err != nil {
		return nil, err
	}
	wrapper := filepath.Join(o.WorkDir, "guestfs-hv")
	pidFile := filepath.Join(o.WorkDir, "guestfs-hv.pid")
	os.Remove(pidFile)
	// The appliance dies with the process that started it: a provider
	// killed mid-apply must not leave a 1.5 GiB qemu behind (setpriv is
	// util-linux's, on every Debian and Ubuntu).
	deathsig := ""
	if p, err := lookPath("setpriv"); err == nil {
		deathsig = p + " --pdeathsig KILL -- "
	}
	script := fmt.Sprintf("#!/bin/sh\necho $$ > %q\nexec %s%q \"$@\"\n", pidFile, deathsig, qemu)
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		return nil, err
	}
	hv, link, err := shortPath(wrapper)
	if err != nil {
		return nil, err
	}
	g, err := lg.Create()
	if err != nil {
		removeLink(link)
		return nil, fmt.Errorf("libguestfs: %w", err)
	}
	s := &Session{g: g, pidFile: pidFile, link: link, done: make(chan struct{}), killed: make(chan struct{}), ctx: ctx}
	setup := []error{
		g.Set_backend("direct"),
		g.Set_hv(hv),
		g.Set_memsize(o.MemoryMiB),
		g.Set_smp(1),
		g.Set_identifier("vmconv"),
	}
	if o.TCG {
		setup = append(setup, g.Set_backend_settings([]string{"force_tcg"}))
	}
	drives := o.Drives
	if len(drives) == 0 {
		drives = []Drive{{o.Drive, o.Format}}
	}
	for _, d := range drives {
		setup = append(setup, g.Add_drive(d.Path, &lg.OptargsAdd_drive{
			Format_is_set: true, Format: d.Format,
			Readonly_is_set: true, Readonly: o.ReadOnly,
		}))
	}
	for _, e := range setup {
		if e != nil {
			g.Close()
			removeLink(link)
			return nil, fmt.Errorf("libguestfs setup: %w", e)
		}
	}
	go s.watch()
	start := time.Now()
	err = g.Launch()
	s.note("launch", time.Since(start))
	if err != nil {
		s.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("libguestfs appliance did not start: %w", err)
	}
	return s, nil
}

func lookPath(name string) (string, error) {
	if filepath.IsAbs(name) {
		return name, nil
	}
	for _, dir := range filepath.SplitList(os.Getenv("PATH")) {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found on PATH", name)
}

// watch kills the appliance when the context ends before Close.
func (s *Session) watch() {
	select {
	case <-s.done:
		return
	case <-s.ctx.Done():
	}
	for i := 0; i < 50; i++ {
		if b, err := os.ReadFile(s.pidFile); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 1 {
				syscall.Kill(pid, syscall.SIGKILL)
				break
			}
		}
		select {
		case <-s.done:
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
	close(s.killed)
}

// Close flushes and shuts the appliance down.
func (s *Session) Close() error {
	var err error
	s.once.Do(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.ctx.Err() == nil {
			start := time.Now()
			if e := s.g.Shutdown(); e != nil {
				err = e
			}
			s.note("shutdown", time.Since(start))
		}
		s.g.Close()
		removeLink(s.link)
		close(s.done)
	})
	return err
}

// maxHVPath bounds the hypervisor path given to libguestfs. libguestfs
// builds the shell command of its QMP probe ("echo '{...}' | <hv>
// -display none -machine ... -qmp stdio") in a buffer of 256 bytes that
// grows only when it is already full, so a piece that crosses the end is
// written past it (lib/command.c add_string; still so in Debian 12's
// 1.48). The probe's text without the path is about 210 bytes: with a path
// of more than about 45 the heap is overrun, and the process aborts later
// ("corrupted size vs. prev_size") or not at all, depending on the length.
const maxHVPath = 32

// shortPath returns a name for the wrapper libguestfs can take: the
// wrapper itself, or a symbolic link to it in the temporary folder (the
// wrapper stays where it is, so a noexec /tmp does not matter), which the
// session removes.
func shortPath(wrapper string) (hv, link string, err error) {
	if len(wrapper) <= maxHVPath {
		return wrapper, "", nil
	}
	for _, dir := range []string{os.TempDir(), "/tmp"} {
		// A process killed with an appliance open leaves its link behind,
		// pointing into a work folder that is gone: sweep those.
		old, _ := filepath.Glob(filepath.Join(dir, "vmconv-hv-*"))
		for _, l := range old {
			if _, err := os.Stat(l); errors.Is(err, fs.ErrNotExist) {
				os.Remove(l)
			}
		}
		b := make([]byte, 8)
		rand.Read(b)
		link = filepath.Join(dir, "vmconv-hv-"+hex.EncodeToString(b))
		if len(link) > maxHVPath {
			continue
		}
		if err := os.Symlink(wrapper, link); err != nil {
			return "", "", fmt.Errorf("cannot link the hypervisor wrapper at a short path: %w", err)
		}
		return link, link, nil
	}
	return "", "", fmt.Errorf("no temporary folder with a path short enough for libguestfs's hypervisor path (%d bytes at most)", maxHVPath)
}

func removeLink(link string) {
	if link != "" {
		os.Remove(link)
	}
}

// call serialises access to the handle, times it under name, and turns a
// killed appliance into the context's error.
func (s *Session) call(name string, f func() error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.ctx.Err(); err != nil {
		return err
	}
	start := time.Now()
	err := f()
	s.note(name, time.Since(start))
	if err != nil && s.ctx.Err() != nil {
		return s.ctx.Err()
	}
	return err
}

func (s *Session) Roots() (roots []string, err error) {
	err = s.call("inspect os", func() error {
		roots, err = s.g.Inspect_os()
		s.inspected = err == nil
		return err
	})
	sort.Strings(roots)
	return roots, err
}

func (s *Session) OSInfo(root string) (guest.OSInfo, error) {
	var o guest.OSInfo
	err := s.call("os info", func() error {
		var e error
		o.Type, _ = s.g.Inspect_get_type(root)
		o.Distro, _ = s.g.Inspect_get_distro(root)
		o.Major, _ = s.g.Inspect_get_major_version(root)
		o.Minor, _ = s.g.Inspect_get_minor_version(root)
		o.ProductName, _ = s.g.Inspect_get_product_name(root)
		o.Arch, _ = s.g.Inspect_get_arch(root)
		o.Hostname, _ = s.g.Inspect_get_hostname(root)
		o.PackageFormat, _ = s.g.Inspect_get_package_format(root)
		o.Mountpoints, e = s.g.Inspect_get_mountpoints(root)
		return e
	})
	return o, err
}

func (s *Session) MountRoot(root string) error {
	if !s.inspected {
		if _, err := s.Roots(); err != nil {
			return err
		}
	}
	info, err := s.OSInfo(root)
	if err != nil {
		return err
	}
	return s.MountAt(info.Mountpoints)
}

func (s *Session) MountAt(mounts map[string]string) error {
	if mounts["/"] == "" {
		return fmt.Errorf("no file system to mount on /")
	}
	mps := make([]string, 0, len(mounts))
	for mp := range mounts {
		mps = append(mps, mp)
	}
	// Parents before children: / before /boot before /boot/efi.
	sort.Slice(mps, func(i, j int) bool { return len(mps[i]) < len(mps[j]) })
	return s.call("mount root", func() error {
		for _, mp := range mps {
			if err := s.g.Mount(mounts[mp], mp); err != nil {
				if mp == "/" {
					return fmt.Errorf("mount %s on /: %w", mounts[mp], err)
				}
				// A file system the guest's fstab names but that cannot be
				// mounted here (another disk, a network share) is skipped.
			}
		}
		return nil
	})
}

func (s *Session) Filesystems() ([]guest.Filesystem, error) {
	var out []guest.Filesystem
	err := s.call("filesystems", func() error {
		m, err := s.g.List_filesystems()
		if err != nil {
			return err
		}
		// list_filesystems leaves out what it cannot mount, BitLocker and LUKS
		// volumes among them; inspection must still see those.
		if parts, err := s.g.List_partitions(); err == nil {
			for _, p := range parts {
				if _, ok := m[p]; !ok {
					if t, err := s.g.Vfs_type(p); err == nil && (t == "BitLocker" || t == "crypto_LUKS") {
						m[p] = t
					}
				}
			}
		}
		for dev, typ := range m {
			f := guest.Filesystem{Device: dev, Type: typ}
			if typ != "unknown" {
				f.UUID, _ = s.g.Vfs_uuid(dev)
				f.Label, _ = s.g.Vfs_label(dev)
			}
			if strings.HasPrefix(dev, "/dev/sd") || strings.HasPrefix(dev, "/dev/vd") {
				if b, err := s.g.Blkid(dev); err == nil {
					f.PartUUID = b["PART_ENTRY_UUID"]
					if f.PartUUID == "" {
						f.PartUUID = b["PARTUUID"]
					}
				}
			}
			out = append(out, f)
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Device < out[j].Device })
	return out, err
}

func (s *Session) PartitionTable() (string, error) {
	var t string
	err := s.call("partition table", func() error {
		devs, err := s.g.List_devices()
		if err != nil || len(devs) == 0 {
			return err
		}
		t, err = s.g.Part_get_parttype(devs[0])
		if err != nil {
			t = "" // a whole-disk file system has no partition table
		}
		return nil
	})
	return t, err
}

func (s *Session) PartitionType(device string) (string, error) {
	var t string
	err := s.call("partition type", func() error {
		disk, err := s.g.Part_to_dev(device)
		if err != nil {
			return err
		}
		n, err := s.g.Part_to_partnum(device)
		if err != nil {
			return err
		}
		pt, err := s.g.Part_get_parttype(disk)
		if err != nil {
			return err
		}
		if pt == "gpt" {
			t, err = s.g.Part_get_gpt_type(disk, n)
			return err
		}
		id, err := s.g.Part_get_mbr_id(disk, n)
		t = fmt.Sprintf("%02x", id)
		return err
	})
	return t, err
}

func (s *Session) PartitionInfo(device string) (guest.Partition, error) {
	var p guest.Partition
	err := s.call("partition info", func() error {
		disk, err := s.g.Part_to_dev(device)
		if err != nil {
			return err
		}
		if p.Number, err = s.g.Part_to_partnum(device); err != nil {
			return err
		}
		parts, err := s.g.Part_list(disk)
		if err != nil {
			return err
		}
		for _, pt := range *parts {
			if int(pt.Part_num) == p.Number {
				p.Start, p.Size = int64(pt.Part_start), int64(pt.Part_size)
			}
		}
		p.GUID, _ = s.g.Part_get_gpt_guid(disk, p.Number)
		return nil
	})
	return p, err
}

func (s *Session) LVs() (lvs []string, err error) {
	err = s.call("lvs", func() error { lvs, err = s.g.Lvs(); return err })
	return lvs, err
}

func (s *Session) Sync() error { return s.call("sync", s.g.Sync) }

func (s *Session) ReadFile(path string) (b []byte, err error) {
	err = s.call("read file", func() error {
		ok, e := s.g.Is_file(path, &lg.OptargsIs_file{Followsymlinks_is_set: true, Followsymlinks: true})
		if e != nil {
			return e
		}
		if !ok {
			return &fs.PathError{Op: "read", Path: path, Err: fs.ErrNotExist}
		}
		b, e = s.g.Read_file(path)
		return e
	})
	return b, err
}

func (s *Session) WriteFile(path string, data []byte, mode fs.FileMode) error {
	return s.call("write file", func() error {
		if err := s.g.Mkdir_p(filepath.Dir(path)); err != nil {
			return err
		}
		// One message of the appliance's protocol holds a few MiB: write
		// an image (an initramfs) a chunk at a time.
		const chunk = 1 << 20
		first := data[:min(len(data), chunk)]
		if err := s.g.Write(path, first); err != nil {
			return err
		}
		for rest := data[len(first):]; len(rest) > 0; {
			n := min(len(rest), chunk)
			if err := s.g.Write_append(path, rest[:n]); err != nil {
				return err
			}
			rest = rest[n:]
		}
		return s.g.Chmod(int(mode.Perm()), path)
	})
}

func (s *Session) Remove(path string) error {
	return s.call("remove", func() error { return s.g.Rm_f(path) })
}

// SHA256 hashes a guest file in the appliance (guestfs checksum).
func (s *Session) SHA256(path string) (sum string, err error) {
	if !s.IsFile(path) {
		return "", &fs.PathError{Op: "checksum", Path: path, Err: fs.ErrNotExist}
	}
	err = s.call("checksum", func() error { sum, err = s.g.Checksum("sha256", path); return err })
	return strings.TrimSpace(sum), err
}

func (s *Session) Exists(path string) bool {
	var ok bool
	s.call("exists", func() error { ok, _ = s.g.Exists(path); return nil })
	return ok
}

func (s *Session) IsFile(path string) bool {
	var ok bool
	s.call("is file", func() error {
		ok, _ = s.g.Is_file(path, &lg.OptargsIs_file{Followsymlinks_is_set: true, Followsymlinks: true})
		return nil
	})
	return ok
}

func (s *Session) IsDir(path string) bool {
	var ok bool
	s.call("is dir", func() error {
		ok, _ = s.g.Is_dir(path, &lg.OptargsIs_dir{Followsymlinks_is_set: true, Followsymlinks: true})
		return nil
	})
	return ok
}

func (s *Session) Glob(pattern string) (out []string, err error) {
	err = s.call("glob", func() error { out, err = s.g.Glob_expand(pattern, nil); return err })
	sort.Strings(out)
	return out, err
}

func (s *Session) Readlink(path string) (t string, err error) {
	err = s.call("readlink", func() error {
		link, e := s.g.Is_symlink(path)
		if e != nil {
			return e
		}
		if !link {
			return errors.New(path + " is not a symlink")
		}
		t, e = s.g.Readlink(path)
		return e
	})
	return t, err
}

func (s *Session) Symlink(target, path string) error {
	return s.call("symlink", func() error {
		if err := s.g.Mkdir_p(filepath.Dir(path)); err != nil {
			return err
		}
		return s.g.Ln_sf(target, path)
	})
}

func (s *Session) Mkdir(path string, mode fs.FileMode) error {
	return s.call("mkdir", func() error {
		if err := s.g.Mkdir_p(path); err != nil {
			return err
		}
		return s.g.Chmod(int(mode.Perm()), path)
	})
}

// Command runs argv in the guest with a sane PATH; libguestfs does not set
// one for the chroot.
func (s *Session) Command(ctx context.Context, argv ...string) (out string, err error) {
	full := append([]string{"/bin/sh", "-c",
		"export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C; exec \"$@\" 2>&1", "sh"}, argv...)
	if len(argv) == 0 {
		return "", fmt.Errorf("guestfs: no command to run")
	}
	err = s.call("command "+filepath.Base(argv[0]), func() error { out, err = s.g.Command(full); return err })
	return out, err
}

// note adds one call of d to name's total. The caller holds mu, or is the
// only user of the session.
func (s *Session) note(name string, d time.Duration) {
	for i := range s.prof {
		if s.prof[i].Name == name {
			s.prof[i].Calls++
			s.prof[i].Seconds += d.Seconds()
			return
		}
	}
	s.prof = append(s.prof, guest.CallStat{Name: name, Calls: 1, Seconds: d.Seconds()})
}

// Profile returns the time spent in each kind of call so far: the launch,
// each guestfs call, each command by its program name, the shutdown.
func (s *Session) Profile() []guest.CallStat {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]guest.CallStat(nil), s.prof...)
}
