package kvm

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	"github.com/vmconv/terraform-provider-vmconv/engine/accel"
	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/engine/guest"
	"github.com/vmconv/terraform-provider-vmconv/engine/nbd"
	"github.com/vmconv/terraform-provider-vmconv/engine/volume"
)

// poolDisks: the domain's disks are volumes of storage pools on the libvirt
// host, which may be another machine. Each overlay is a volume the host
// makes on top of the converted volume; nothing is read or written through
// the runner's file system. The boot marker is planted into a local copy
// of the (small) overlay whose backing file is the base volume served over
// NBD from libvirt's ranged downloads, and the copy is uploaded back.
type poolDisks struct {
	m     *Manager
	bases []volume.Info
}

// overlayName is the domain's own volume for disk i, in the disk's pool:
// not "<name>-disk<i>", which a whole VM's volumes are called.
func overlayName(domain string, i int) string { return fmt.Sprintf("%s-overlay%d.qcow2", domain, i) }

func (p *poolDisks) check(ctx context.Context, req Request) error {
	hv, err := p.m.hypervisor()
	if err != nil {
		return err
	}
	p.bases = nil
	for i, d := range req.Disks {
		if d.Pool == "" || d.Volume == "" || d.Source != "" {
			return fault.New(fault.InvalidRequest, req.Name, "disk %d of the domain mixes a file and a pool volume, or lacks one", i).
				WithHint("Give every disk a pool and a volume (disks on the libvirt host), or every disk a path (files on this machine).")
		}
		info, ok, err := hv.Volume(d.Pool, d.Volume)
		if err != nil {
			return fault.Wrap(fault.HypervisorFailed, "", err, "cannot look up volume %s/%s", d.Pool, d.Volume)
		}
		if !ok {
			return fault.New(fault.SourceMissing, "", "disk %d of the domain, volume %s in pool %s, does not exist on %s", i, d.Volume, d.Pool, p.m.URI()).
				WithHint("Point disks[%d] at a converted volume (vmconv_disk_conversion with output.pool and output.volume).", i)
		}
		if info.Format != "qcow2" && info.Format != "raw" {
			return fault.New(fault.UnknownFormat, "", "disk %d of the domain, volume %s/%s, is %q, not a qcow2 or raw image", i, d.Pool, d.Volume, info.Format)
		}
		if _, taken, _ := hv.Volume(d.Pool, overlayName(req.Name, i)); taken {
			return fault.New(fault.OutputExists, "", "pool %s already has a volume %s, the name of this domain's own disk %d", d.Pool, overlayName(req.Name, i), i).
				WithHint("Delete it (virsh vol-delete --pool %s %s) if it is left from a domain that is gone, or choose another domain name.", d.Pool, overlayName(req.Name, i))
		}
		p.bases = append(p.bases, info)
	}
	return nil
}

func (p *poolDisks) prepare(ctx context.Context, req Request, st *Domain) error {
	hv, _ := p.m.hypervisor()
	// The console is read through libvirt's stream and kept on this
	// machine, where the user looks for it: the host's files are not ours.
	dir := p.m.domainDir(req.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fault.Wrap(fault.OutputNotWritable, dir, err, "cannot create the domain's folder for its console log")
	}
	st.ConsoleLog = filepath.Join(dir, "console.log")
	for i, d := range req.Disks {
		b := p.bases[i]
		ov, err := hv.CreateOverlayVolume(d.Pool, overlayName(req.Name, i), b.Path, b.Format, b.Capacity)
		if err != nil {
			return fault.Wrap(fault.HypervisorFailed, "", err, "cannot create the domain's disk %d in pool %s", i, d.Pool)
		}
		st.Overlays = append(st.Overlays, VolumeRef(ov.Pool, ov.Name))
	}
	return nil
}

func (p *poolDisks) undo(req Request, st *Domain) {
	p.m.removeVolumes(req.Name, st.Overlays)
	os.RemoveAll(p.m.domainDir(req.Name))
}

// removeVolumes deletes a remote domain's overlay volumes: only those
// vmconv made for it, by their names. An imported domain's disk that is
// not such an overlay is its data, and is kept.
func (m *Manager) removeVolumes(domain string, refs []string) error {
	hv, err := m.hypervisor()
	if err != nil {
		return err
	}
	for i, o := range refs {
		if pool, name, ok := ParseVolumeRef(o); ok && name == overlayName(domain, i) {
			if err := hv.Delete(pool, name); err != nil {
				return fault.Wrap(fault.HypervisorFailed, "", err, "cannot delete the domain's disk %s/%s", pool, name)
			}
		}
	}
	return nil
}

func (p *poolDisks) hostPaths(st *Domain) ([]string, error) {
	hv, err := p.m.hypervisor()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, o := range st.Overlays {
		pool, name, ok := ParseVolumeRef(o)
		if !ok {
			return nil, fault.New(fault.Internal, "", "the domain's disk %q is not a pool volume", o)
		}
		info, found, err := hv.Volume(pool, name)
		if err != nil || !found {
			return nil, fault.New(fault.RemoteNotFound, "", "the domain's disk %s/%s is gone from %s", pool, name, p.m.URI()).
				WithHint("Run terraform apply again: the domain is recreated.")
		}
		out = append(out, info.Path)
	}
	return out, nil
}

func (p *poolDisks) nvram(string) string { return "" }

// instrument plants the marker on the first overlay: download it (it holds
// only what the guest wrote), serve its base volume over NBD, point the
// copy's backing file at that, plant, point it back at the base's path on
// the host and upload it in place of the overlay.
func (p *poolDisks) instrument(ctx context.Context, st *Domain, info *guest.Info, nonce string, poweroff bool) error {
	hv, err := p.m.hypervisor()
	if err != nil {
		return err
	}
	pool, name, _ := ParseVolumeRef(st.Overlays[0])
	ov, _, err := hv.Volume(pool, name)
	if err != nil {
		return fault.Wrap(fault.HypervisorFailed, "", err, "cannot look up the domain's disk %s/%s", pool, name)
	}
	work, err := p.m.deps.Scratch("instrument-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	local := filepath.Join(work, "overlay.qcow2")
	b, err := hv.Download(ctx, pool, name, 0, int64(ov.Physical))
	if err == nil {
		err = os.WriteFile(local, b, 0o600)
	}
	if err != nil {
		return fault.Wrap(fault.HypervisorFailed, "", err, "cannot read the domain's disk %s/%s to prepare its boot test", pool, name)
	}
	base := p.bases[0]
	// A unix socket's path has at most 107 bytes; the work folder may be
	// deeper than that.
	sockDir, err := os.MkdirTemp("", "vmconv-nbd-")
	if err != nil {
		return fault.Wrap(fault.Internal, "", err, "cannot make a folder for the NBD socket")
	}
	defer os.RemoveAll(sockDir)
	sock := filepath.Join(sockDir, "s")
	l, err := nbd.Listen(sock)
	if err != nil {
		return fault.Wrap(fault.Internal, sock, err, "cannot serve the base volume to the appliance")
	}
	sctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		r := volume.NewReader(sctx, hv, base)
		nbd.Serve(sctx, l, nbd.NewCache(r, r.Size(), 1<<20, 256), r.Size())
	}()
	defer func() { stop(); l.Close(); wg.Wait() }()
	if err := p.m.deps.Rebase(ctx, local, nbd.URI(sock), base.Format); err != nil {
		return err
	}
	if err := p.m.instrumentOnce(ctx, local, info, nonce, poweroff); err != nil {
		return err
	}
	if err := p.m.deps.Rebase(ctx, local, base.Path, base.Format); err != nil {
		return err
	}
	src, err := volume.OpenFile(local)
	if err != nil {
		return fault.Wrap(fault.Internal, local, err, "cannot read the prepared disk")
	}
	defer src.Close()
	// The overlay is the domain's alone and the domain is not running:
	// replacing it in place needs no temporary name.
	if err := hv.Delete(pool, name); err == nil {
		if err = hv.Create(pool, name, "raw", uint64(src.Size())); err == nil {
			if err = hv.Upload(ctx, pool, name, src, nil); err == nil {
				err = hv.Refresh(ctx, pool)
			}
		}
	}
	if err != nil {
		return fault.Wrap(fault.HypervisorFailed, "", err, "cannot write the prepared disk back to %s/%s", pool, name)
	}
	return nil
}

func (p *poolDisks) console(ctx context.Context, req Request, st *Domain, work string) (string, func()) {
	hv, _ := p.m.hypervisor()
	path := st.ConsoleLog
	f, err := os.Create(path)
	if err != nil {
		return path, func() {}
	}
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer f.Close()
		if err := hv.OpenConsole(cctx, req.Name, f); err != nil && cctx.Err() == nil {
			// In the log the boot test's verdict quotes, not lost.
			fmt.Fprintf(f, "\n[vmconv] cannot read the serial console through libvirt: %v\n", err)
		}
	}()
	return path, func() { cancel(); <-done }
}

func (p *poolDisks) published(Request, *Domain) {}

// volumeDisk names a live disk that is a pool volume on the host by its
// VolumeRef, and its base likewise: a remote domain's files are not on
// this machine to be read.
func (m *Manager) volumeDisk(ld *LiveDisk) {
	hv, err := m.hypervisor()
	if err != nil {
		return
	}
	info, backing, ok, err := hv.VolumeByPath(ld.Path)
	if err != nil || !ok {
		return
	}
	ld.Path = VolumeRef(info.Pool, info.Name)
	if backing == "" {
		return
	}
	if b, _, ok, err := hv.VolumeByPath(backing); err == nil && ok {
		ld.Backing = VolumeRef(b.Pool, b.Name)
	}
}

// accelFor is how req's domain runs: for disks in a pool, as the libvirt
// host can run it (its capabilities list kvm), not as this machine can.
func (m *Manager) accelFor(ctx context.Context, req Request) (accel.Result, error) {
	if reason := m.hostKVMFailure(); reason != "" {
		return accel.Result{Mode: accel.TCG, Reason: reason}, nil
	}
	if !req.remote() {
		return m.deps.Accel(ctx)
	}
	hv, err := m.hypervisor()
	if err != nil {
		return accel.Result{}, err
	}
	caps, err := hv.Capabilities()
	if err != nil {
		return accel.Result{}, fault.Wrap(fault.HypervisorFailed, "", err, "cannot read the capabilities of %s", m.URI())
	}
	if strings.Contains(caps, "<domain type='kvm'") {
		return accel.Result{Mode: accel.KVM, Reason: "the host's capabilities list kvm"}, nil
	}
	return accel.Result{Mode: accel.TCG, Reason: "the host's capabilities do not list kvm"}, nil
}

// kvmAbort matches what qemu says when KVM itself fails (its kvm.c
// asserting, a kvm_* call failing, /dev/kvm refused, KVM not initialised),
// and not a mere "kvm" in a domain's or a file's name.
var kvmAbort = regexp.MustCompile(`(?i)kvm\.c:|kvm_[a-z_]+|/dev/kvm|(?:initiali[sz]e|access) kvm|kvm: `)

// kvmFailed tells whether a kvm domain's start failed in the accelerator
// rather than in its definition or disks.
func kvmFailed(err error) bool {
	return kvmAbort.MatchString(err.Error())
}

// kvmUnusable remembers that this host's KVM could not start a domain, so
// every later domain on it runs under TCG without trying again.
func (m *Manager) kvmUnusable(err error) {
	m.hvMu.Lock()
	defer m.hvMu.Unlock()
	msg := strings.Join(strings.Fields(err.Error()), " ")
	if len(msg) > 300 {
		msg = msg[:300] + "…"
	}
	m.kvmFailure = "KVM on " + m.URI() + " failed to start a domain (" + msg + "); running under TCG"
}

func (m *Manager) hostKVMFailure() string {
	m.hvMu.Lock()
	defer m.hvMu.Unlock()
	return m.kvmFailure
}
