// Package engine converts VM disks for KVM. It works in two steps: Plan
// inspects the request and decides everything (formats, chain, stages,
// sizes) without writing a byte, and Apply executes a Plan, reporting
// progress as Events. The engine is a library: it never imports Terraform
// packages, and the provider is a thin adapter over it.
package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vmconv/terraform-provider-vmconv/engine/accel"
	"github.com/vmconv/terraform-provider-vmconv/engine/chain"
	"github.com/vmconv/terraform-provider-vmconv/engine/diskformat"
	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/engine/fingerprint"
	"github.com/vmconv/terraform-provider-vmconv/engine/internal/libvirt"
	"github.com/vmconv/terraform-provider-vmconv/engine/internal/proc"
	"github.com/vmconv/terraform-provider-vmconv/engine/internal/qemuimg"
	"github.com/vmconv/terraform-provider-vmconv/engine/kvm"
	"github.com/vmconv/terraform-provider-vmconv/engine/source"
)

// Config configures an Engine. Zero values pick sensible defaults.
type Config struct {
	// WorkDir holds overlays and shadow descriptors during a conversion.
	WorkDir string
	// CacheDir holds results worth keeping between runs.
	CacheDir string
	// MaxParallel bounds how many conversions run at once in this process.
	MaxParallel int
	// QemuImg is the qemu-img binary.
	QemuImg string
	// Qemu is the system emulator used for boot tests and the appliance.
	Qemu string
	// Accel is auto (probe), kvm or tcg.
	Accel string
	// FirmwareDir holds the OVMF UEFI firmware.
	FirmwareDir string
	// LibvirtURI is where domains are defined (default qemu:///system).
	LibvirtURI string
	// DomainDir holds domains' own disks (default /var/lib/vmconv/domains).
	DomainDir string
	// SSHKeyFile and SSHKnownHosts are for a qemu+ssh LibvirtURI: the
	// private key, and the known_hosts file that pins the host key.
	SSHKeyFile, SSHKnownHosts string
	// MaxUploads bounds concurrent uploads to the libvirt host (default
	// DefaultMaxUploads).
	MaxUploads int
}

// DefaultMaxParallel is the default number of concurrent conversions: half
// the CPUs, at least one and at most four. Conversions are mostly bound by
// storage, where more parallel streams only add seeking.
func DefaultMaxParallel() int {
	return min(4, max(1, runtime.NumCPU()/2))
}

// Engine plans and applies conversions.
type Engine struct {
	cfg  Config
	qemu qemuimg.Tool
	sem  chan struct{}

	accelOnce sync.Once
	accelRes  accel.Result
	accelErr  error

	domains *kvm.Manager

	// hostConn is the storage connection to the libvirt host (pool
	// outputs); upSem bounds concurrent uploads to it.
	hostMu   sync.Mutex
	hostConn *libvirt.Conn
	upSem    chan struct{}
	// idleUploads are connections for uploads, one per upload at once.
	idleUploads []*libvirt.Conn

	// inspecting deduplicates concurrent plan-time inspections of one
	// source: Terraform plans many resources at once.
	inspectMu  sync.Mutex
	inspecting map[string]*inflight
}

type inflight struct {
	done chan struct{}
	g    *GuestPlan
	err  error
}

// Accel resolves (once) whether guests run under KVM or TCG.
func (e *Engine) Accel(ctx context.Context) (accel.Result, error) {
	e.accelOnce.Do(func() {
		e.accelRes, e.accelErr = accel.Resolve(ctx, e.cfg.Accel, accel.Options{Qemu: e.cfg.Qemu, CacheDir: e.cfg.CacheDir})
	})
	return e.accelRes, e.accelErr
}

// New returns an Engine. It checks the tools it needs are installed.
func New(cfg Config) (*Engine, error) {
	if cfg.MaxParallel <= 0 {
		cfg.MaxParallel = DefaultMaxParallel()
	}
	if cfg.WorkDir == "" {
		cfg.WorkDir = filepath.Join(os.TempDir(), "vmconv")
	}
	if cfg.CacheDir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			base = os.TempDir()
		}
		cfg.CacheDir = filepath.Join(base, "vmconv")
	}
	q := qemuimg.Exec{Path: cfg.QemuImg}
	if err := q.Available(); err != nil {
		return nil, fault.Wrap(fault.ToolMissing, "qemu-img", err, "qemu-img is not installed").
			WithHint("Install qemu-utils (Debian/Ubuntu: apt-get install qemu-utils), or run tools/setup.")
	}
	if cfg.MaxUploads <= 0 {
		cfg.MaxUploads = DefaultMaxUploads
	}
	e := &Engine{cfg: cfg, qemu: q, sem: make(chan struct{}, cfg.MaxParallel), upSem: make(chan struct{}, cfg.MaxUploads)}
	e.domains = e.newDomains()
	return e, nil
}

// Config returns the effective configuration.
func (e *Engine) Config() Config { return e.cfg }

type resolvedSource struct {
	src source.Source
	// c is the first disk's chain; disks are every disk's, in order.
	c     *chain.Chain
	disks []resolvedDisk
	local *source.Local
	fp    string
	// stamps are what the fingerprint was made of, by path: what
	// names the file that changed when the fingerprint does.
	stamps map[string]fingerprint.Stamp
	// remote is set when a remote source was not fetched: plan from it.
	remote *source.Remote
	// deferred is set when a disk of a VM was not fetched: the VM is
	// planned from what the remote ends report.
	deferred bool
	// cacheEntries are the cache folders the source used.
	cacheEntries []string
}

func (rs *resolvedSource) addStamps(paths []string, stamps []fingerprint.Stamp) {
	if rs.stamps == nil {
		rs.stamps = map[string]fingerprint.Stamp{}
	}
	for i, p := range paths {
		rs.stamps[p] = stamps[i]
	}
}

// sourceEnv is what the sources need from the engine; their messages go to
// the sink as FETCH events.
func (e *Engine) sourceEnv(sink Sink) source.Env {
	return source.Env{CacheDir: e.cfg.CacheDir, Log: fetchLog{sink}}
}

// fetchLog turns the transports' messages (URLs redacted, no header
// values) into FETCH events.
type fetchLog struct{ sink Sink }

func (l fetchLog) Log(level, msg string, f map[string]any) {
	if l.sink == nil {
		return
	}
	ev := Event{Time: time.Now(), Kind: EventInfo, Stage: StageFetch, Message: msg, Fields: f}
	if level == "progress" {
		ev.Kind = EventProgress
		if p, ok := f["percent"].(int64); ok {
			ev.Percent = float64(p)
		}
	}
	l.sink.Event(ev)
}

// resolveSource makes the source local (an OVA's disk is extracted into
// the cache; a remote disk is copied into it when fetchNow or found there)
// and resolves its chain, or each disk's for a whole VM (vm). The
// fingerprint is the source's own when it has one (an archive's, a remote
// object's), the chain's files' otherwise. Faults name what the user
// wrote, never a cache file.
//
// The cache entries it uses are locked until it returns (holds), which
// records their user, and listed in rs.cacheEntries.
func (e *Engine) resolveSource(ctx context.Context, spec SourceSpec, vm, fetchNow bool, sink Sink, holds *cacheHolds) (_ *resolvedSource, err error) {
	env := e.sourceEnv(sink)
	env.WholeVM = vm
	env.Hold = holds.hold
	defer holds.release()
	rs := &resolvedSource{src: source.Select(spec, env)}
	defer func() {
		err = rs.src.Relabel(err)
		rs.cacheEntries = holds.dirs
		if err != nil {
			holds.forget()
		}
	}()
	rs.local, rs.remote, err = rs.src.Locate(ctx, fetchNow)
	if err != nil {
		return nil, err
	}
	if rs.remote != nil {
		if vm {
			// An OVA's disks and their order are in its descriptor, which
			// is in the archive.
			shown, _ := rs.src.Describe(rs.remote)
			return nil, fault.New(fault.InvalidRequest, shown, "a whole VM from a source that is not downloaded yet cannot be planned: its disks are listed inside it").
				WithHint("Set the provider's plan_fetch = true to download it at plan time, or download it and use source.ova.path.")
		}
		rs.fp = rs.remote.Fingerprint
		return rs, nil
	}
	heads := []source.Disk{{Head: rs.local.Head}}
	switch {
	case vm && len(rs.local.Disks) > 0:
		heads = rs.local.Disks
	case vm:
		return nil, fault.New(fault.InvalidRequest, "", "the source is one disk, not a whole VM").
			WithHint("Convert it with output.path, or name the VM (source.vmx).")
	case rs.local.Head == "":
		// Converting the first disk alone would drop the others without a
		// word.
		return nil, fault.New(fault.InvalidRequest, spec.VMX, "the VM has %d disks, and a disk conversion converts one", len(rs.local.Disks)).
			WithHint("Convert one disk with source.path naming its file, or the whole VM as one guest (output.dir).")
	}
	if !vm {
		c, err := e.resolveChain(heads[0].Head, spec, rs.src.Kind())
		if err != nil {
			return nil, err
		}
		rs.disks = []resolvedDisk{{Disk: heads[0], c: c}}
		rs.c, rs.fp = c, rs.local.Fingerprint
		if rs.fp == "" {
			var stamps []fingerprint.Stamp
			if rs.fp, stamps, err = fingerprint.Files(filePaths(c)); err != nil {
				return nil, fault.Wrap(fault.SourceUnreadable, c.Head().Path, err, "cannot fingerprint the source")
			}
			rs.addStamps(filePaths(c), stamps)
		}
		return rs, nil
	}
	// A VM's identity is each disk's (its own fingerprint, or its chain's
	// files'), unless the source has one for the whole VM, and where each
	// disk sits: the guest names its disks by slot, so moving one is a
	// change of the source. A disk not fetched yet is known by what its
	// remote end reports, which is what its fetched copy will be known by.
	h := sha256.New()
	fmt.Fprintln(h, rs.local.Fingerprint)
	for i, d := range heads {
		rd := resolvedDisk{Disk: d}
		fp := d.Fingerprint
		if d.Remote == nil {
			// A listed disk is checked as it would be alone: its own
			// format, parentCID and older-snapshot settings, its own kind.
			dspec, kind := spec, rs.src.Kind()
			if kind == "disks" {
				dspec, kind = spec.Disks[i], d.Kind
			}
			if d.Format != "" {
				dspec.Format = d.Format
			}
			if rd.c, err = e.resolveChain(d.Head, dspec, kind); err != nil {
				if fe, ok := fault.As(err); ok && rs.src.Kind() == "disks" {
					return nil, fe.WithFact("Listed disk", fmt.Sprintf("source.disks[%d]", i))
				}
				return nil, err
			}
			if fp == "" && rs.local.Fingerprint == "" {
				var stamps []fingerprint.Stamp
				if fp, stamps, err = fingerprint.Files(filePaths(rd.c)); err != nil {
					return nil, fault.Wrap(fault.SourceUnreadable, d.Head, err, "cannot fingerprint the source")
				}
				rs.addStamps(filePaths(rd.c), stamps)
			}
		} else {
			rs.deferred = true
		}
		rs.disks = append(rs.disks, rd)
		fmt.Fprintf(h, "%s %s %s %d %d\n", fp, d.Device, d.Slot.Bus, d.Slot.Controller, d.Slot.Unit)
	}
	rs.c = rs.disks[0].c
	rs.fp = fingerprint.Version + ":" + hex.EncodeToString(h.Sum(nil))
	return rs, nil
}

// resolveChain resolves one disk's chain from its newest file, refusing a
// layer that has a newer snapshot beside it.
func (e *Engine) resolveChain(head string, spec SourceSpec, kind string) (*chain.Chain, error) {
	c, err := chain.Resolve(head, chain.Options{
		Format:                 diskformat.Format(spec.Format),
		AllowParentCIDMismatch: spec.AllowParentCIDMismatch,
	})
	if err != nil {
		return nil, err
	}
	if (kind == "path" || kind == "vmx") && !spec.AllowOlderSnapshot {
		// Only a local folder can hold snapshots the user did not name: a
		// fetched source is exactly the chain its remote end names. A .vmx
		// names its disks' newest files, unless it is older than they are.
		newer, err := c.NewerSnapshots()
		if err != nil {
			return nil, fault.Wrap(fault.SourceUnreadable, c.Head().Path, err, "cannot look for newer snapshots beside the source")
		}
		if len(newer) > 0 {
			return nil, fault.New(fault.OlderSnapshot, c.Head().Path,
				"%s has a newer snapshot beside it, %s, so converting it would lose that snapshot's writes", filepath.Base(c.Head().Path), filepath.Base(newer[0])).
				WithHint("%s", chain.NewerSnapshotHint(newer)).WithFact("Newer snapshot", newer[0])
		}
	}
	return c, nil
}

// resolvedDisk is one disk of a source and its chain.
type resolvedDisk struct {
	source.Disk
	c *chain.Chain
}

// files are the files an output must never overwrite.
func (rs *resolvedSource) files() []string {
	var out []string
	for _, d := range rs.disks {
		if d.c != nil {
			out = append(out, filePaths(d.c)...)
		}
	}
	return append(out, rs.src.Protected()...)
}

func filePaths(c *chain.Chain) []string {
	var out []string
	for _, f := range c.Files() {
		out = append(out, f.Path)
	}
	return out
}

// toolFault classifies a failed tool run.
func toolFault(ctx context.Context, err error, file, msg string) error {
	if ctx.Err() != nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fault.Wrap(fault.Cancelled, file, ctx.Err(), "cancelled").WithHint("The operation was interrupted or timed out; nothing was written at the output path.")
	}
	if fe, ok := fault.As(err); ok {
		return fe
	}
	if strings.Contains(err.Error(), "No space left on device") || errors.Is(err, syscall.ENOSPC) {
		return fault.Wrap(fault.NoSpace, file, err, "the output file system ran out of space").
			WithHint("Free space where the output goes, or choose another output.path. Nothing was left at the output path.")
	}
	return fault.Wrap(fault.ToolFailed, file, err, "%s", msg)
}

// scratch makes a private folder under the work folder. Its name carries
// this process's pid: a SIGKILLed run (terraform killed, the provider with
// it) runs no deferred clean-up, and the pid is how a later process tells
// that run's folder, an overlay of the guest perhaps hundreds of MiB large,
// from a live one's.
func (e *Engine) scratch(prefix string) (string, error) {
	if err := os.MkdirAll(e.cfg.WorkDir, 0o755); err != nil {
		return "", fault.Wrap(fault.Internal, e.cfg.WorkDir, err, "cannot create the work folder")
	}
	sweepScratch(e.cfg.WorkDir)
	return os.MkdirTemp(e.cfg.WorkDir, fmt.Sprintf("%s%d-", prefix, os.Getpid()))
}

// scratchName matches the folders scratch makes: "apply-<pid>-<random>".
var scratchName = regexp.MustCompile(`^(?:apply|plan|plan-guest|boot|domain|instrument)-([0-9]+)-[0-9]+$`)

// swept holds the work folders this process has swept: once is enough, as
// every folder left later is a live process's.
var swept sync.Map

// sweepScratch removes the scratch folders of processes that are gone.
func sweepScratch(dir string) {
	if _, done := swept.LoadOrStore(dir, true); done {
		return
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		m := scratchName.FindStringSubmatch(e.Name())
		if m == nil || !e.IsDir() {
			continue
		}
		if pid, err := strconv.Atoi(m[1]); err == nil && pid != os.Getpid() && !proc.Alive(pid) {
			os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
}
