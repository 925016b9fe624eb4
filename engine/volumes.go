package engine

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/engine/hostconn"
	"github.com/vmconv/terraform-provider-vmconv/engine/internal/libvirt"
	"github.com/vmconv/terraform-provider-vmconv/engine/kvm"
	"github.com/vmconv/terraform-provider-vmconv/engine/progress"
	"github.com/vmconv/terraform-provider-vmconv/engine/volume"
)

// VolumeReportSuffix names a pool output's report volume: "<volume>.vmconv.json".
const VolumeReportSuffix = volume.ReportSuffix

// VolumeMarkdownSuffix names the Markdown report volume beside it:
// "<volume>.vmconv.md".
const VolumeMarkdownSuffix = volume.MarkdownSuffix

// DefaultMaxUploads bounds concurrent uploads to one libvirt host: two
// streams keep a link busy while one of them waits on the host's disk;
// more only split the same bandwidth (docs/guides/benchmarks.md).
const DefaultMaxUploads = 2

// VolumePlan is where a pool output will be published.
type VolumePlan struct {
	// URI is the libvirt host's, redacted (no query, no password).
	URI    string `json:"uri"`
	Pool   string `json:"pool"`
	Name   string `json:"name"`
	Format string `json:"format"`
	// PoolPath is the pool's folder on the host: shown, never opened.
	PoolPath  string `json:"pool_path"`
	Available uint64 `json:"available"`
	// Replaces is set when a volume vmconv published is replaced.
	Replaces bool `json:"replaces"`
	// Disks are a whole VM's volumes, in its order; Name is then the
	// prefix of their names and of the set's report.
	Disks []string `json:"disks,omitempty"`
	// overwrite lets a volume vmconv did not publish be replaced.
	overwrite bool
}

// VolumeResult is a published volume.
type VolumeResult struct {
	URI    string `json:"uri"`
	Pool   string `json:"pool"`
	Name   string `json:"name"`
	Path   string `json:"path"`
	Format string `json:"format"`
	// Capacity is the guest's disk size; Allocation what the host
	// stores; Physical the file's length.
	Capacity   uint64 `json:"capacity"`
	Allocation uint64 `json:"allocation"`
	Physical   uint64 `json:"physical"`
	Stamp      string `json:"stamp"`
	// Sent is the data that crossed the connection (holes do not).
	Sent int64 `json:"sent"`
}

var volumeName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,200}$`)

// host is the engine's connection to its libvirt host for storage.
func (e *Engine) host() (*libvirt.Conn, error) {
	e.hostMu.Lock()
	defer e.hostMu.Unlock()
	if e.hostConn != nil {
		if ok, err := e.hostConn.Alive(); err == nil && ok {
			return e.hostConn, nil
		}
		e.hostConn.Close()
		e.hostConn = nil
	}
	s := e.hostSettings()
	uri, err := s.Dialable(filepath.Join(e.cfg.WorkDir, "ssh"))
	if err != nil {
		return nil, err
	}
	c, err := libvirt.Open(uri)
	if err != nil {
		return nil, hostconn.Unreachable(s, err)
	}
	e.hostConn = c
	return c, nil
}

func (e *Engine) hostSettings() hostconn.Settings {
	return hostconn.Settings{URI: e.LibvirtURI(), KeyFile: e.cfg.SSHKeyFile, KnownHosts: e.cfg.SSHKnownHosts}
}

// uploadConn is a connection of its own for one upload: over qemu+ssh each
// connection is one encrypted stream, so parallel uploads on one shared
// connection would share one stream's bandwidth. Connections are kept for
// the next upload; put gives one back.
func (e *Engine) uploadConn() (c *libvirt.Conn, put func(), err error) {
	e.hostMu.Lock()
	for len(e.idleUploads) > 0 && c == nil {
		c = e.idleUploads[len(e.idleUploads)-1]
		e.idleUploads = e.idleUploads[:len(e.idleUploads)-1]
		if ok, err := c.Alive(); err != nil || !ok {
			c.Close()
			c = nil
		}
	}
	e.hostMu.Unlock()
	if c == nil {
		s := e.hostSettings()
		uri, err := s.Dialable(filepath.Join(e.cfg.WorkDir, "ssh"))
		if err != nil {
			return nil, nil, err
		}
		if c, err = libvirt.Open(uri); err != nil {
			return nil, nil, hostconn.Unreachable(s, err)
		}
	}
	return c, func() {
		e.hostMu.Lock()
		defer e.hostMu.Unlock()
		e.idleUploads = append(e.idleUploads, c)
	}, nil
}

// CheckHost connects to the libvirt host, for a plan that needs it.
func (e *Engine) CheckHost(ctx context.Context) error {
	_, err := e.host()
	return err
}

// stagingPath is where a pool output is converted before its upload: one
// file per host, pool and volume, so the output lock serialises applies
// of one volume on this runner.
func (e *Engine) stagingPath(pool, name string) string {
	sum := sha256.Sum256([]byte(hostconn.Redacted(e.LibvirtURI()) + "\x00" + pool))
	return filepath.Join(e.cfg.CacheDir, "staging", hex.EncodeToString(sum[:8]), name)
}

// planVolume checks a pool output against the host and points the
// request's output at its staging file (a disk) or folder (a whole VM). A
// whole VM's volume names are known after planVM; checkVMVolumes checks
// them.
func (e *Engine) planVolume(ctx context.Context, req *Request, opts PlanOptions) (*VolumePlan, error) {
	o := &req.Output
	switch {
	case o.Path != "" || o.Dir != "":
		return nil, fault.New(fault.InvalidRequest, o.Path+o.Dir, "both a local output and output.pool are set").
			WithHint("output.path and output.dir write on this machine; output.pool publishes volumes on the provider's libvirt host. Set one.")
	case o.Pool == "" || (o.Volume == "" && !o.VM):
		return nil, fault.New(fault.InvalidRequest, "", "output.pool and output.volume go together").
			WithHint("Name the storage pool and the volume to create in it.")
	case o.Volume != "" && (!volumeName.MatchString(o.Volume) || volume.IsReport(o.Volume) || volume.IsPart(o.Volume, "")):
		return nil, fault.New(fault.InvalidRequest, "", "%q is not a volume name vmconv can publish", o.Volume).
			WithHint("Use letters, digits, '.', '_', '+' and '-' (no '/'), not ending in %s or %s.", volume.ReportSuffix, volume.MarkdownSuffix)
	}
	h, err := e.host()
	if err != nil {
		return nil, err
	}
	vp := &VolumePlan{URI: hostconn.Redacted(e.LibvirtURI()), Pool: o.Pool, Name: o.Volume, Format: o.Format, overwrite: o.Overwrite}
	pi, err := h.Pool(o.Pool)
	if err != nil {
		f := fault.Wrap(fault.PoolMissing, "", err, "storage pool %s is not usable on %s", o.Pool, vp.URI).WithFact("URI", vp.URI)
		if errors.Is(err, libvirt.ErrNoPool) {
			f = f.WithHint("Create it on the host (virsh pool-define-as %s dir --target <folder>; virsh pool-start %s), or name an existing one (virsh pool-list).", o.Pool, o.Pool)
		}
		return nil, f
	}
	vp.PoolPath, vp.Available = pi.Path, pi.Available
	if o.VM {
		// The VM's own folder of staging images, private to this runner.
		key, _ := json.Marshal(req.Source)
		sum := sha256.Sum256(append(key, o.Volume...))
		o.Dir = e.stagingPath(o.Pool, "vm-"+hex.EncodeToString(sum[:6]))
		if err := os.MkdirAll(filepath.Dir(o.Dir), 0o700); err != nil {
			return nil, fault.Wrap(fault.OutputNotWritable, filepath.Dir(o.Dir), err, "cannot create the staging folder for uploads")
		}
		return vp, nil
	}
	if err := e.checkVolumesFree(ctx, h, vp, o.Volume, []string{o.Volume, volume.ReportName(o.Volume), volume.MarkdownName(o.Volume)}, opts.ManagedOutput || o.Overwrite); err != nil {
		return nil, err
	}
	o.Path = e.stagingPath(o.Pool, o.Volume)
	if err := os.MkdirAll(filepath.Dir(o.Path), 0o700); err != nil {
		return nil, fault.Wrap(fault.OutputNotWritable, filepath.Dir(o.Path), err, "cannot create the staging folder for uploads")
	}
	return vp, nil
}

// checkVolumesFree refuses names taken by volumes that are not vmconv's
// own under the report of reportOf (unless replace), and sets
// vp.Replaces when some will be replaced.
func (e *Engine) checkVolumesFree(ctx context.Context, h *libvirt.Conn, vp *VolumePlan, reportOf string, names []string, replace bool) error {
	_, ours := e.volumeReport(ctx, h, vp.Pool, reportOf)
	for _, n := range names {
		_, ok, err := h.Volume(vp.Pool, n)
		if err != nil {
			return fault.Wrap(fault.HypervisorFailed, "", err, "cannot look up volume %s/%s", vp.Pool, n)
		}
		if !ok {
			continue
		}
		if replace && (ours || vp.overwrite) {
			vp.Replaces = true
			continue
		}
		hint := "Choose another output.volume, or delete the volume (virsh vol-delete --pool %s %s) if it is not needed."
		if ours {
			hint = "vmconv published it, for another resource or an apply Terraform did not record: set output.overwrite = true to replace it, or delete it (virsh vol-delete --pool %s %s)."
		}
		return fault.New(fault.OutputExists, "", "volume %s already exists in pool %s on %s", n, vp.Pool, vp.URI).WithHint(hint, vp.Pool, n)
	}
	return nil
}

// checkVMVolumes names a whole VM's volumes after planVM and checks them.
func (e *Engine) checkVMVolumes(ctx context.Context, p *Plan, opts PlanOptions) error {
	vp := p.Output.Volume
	vp.Disks = nil
	for _, d := range p.Disks {
		vp.Disks = append(vp.Disks, filepath.Base(d.Output.Path))
	}
	if vp.Name == "" && len(vp.Disks) > 0 {
		vp.Name = strings.TrimSuffix(vp.Disks[0], fmt.Sprintf("-disk0.%s", p.Output.Format))
	}
	h, err := e.host()
	if err != nil {
		return err
	}
	return e.checkVolumesFree(ctx, h, vp, vp.Name, append(slices.Clone(vp.Disks), volume.ReportName(vp.Name), volume.MarkdownName(vp.Name)), opts.ManagedOutput || p.Request.Output.Overwrite)
}

// checkVolumeSpace checks the pool can hold the upload and its published
// copy, which exist side by side until the temporary is deleted.
func checkVolumeSpace(p *Plan) error {
	vp := p.Output.Volume
	need := uint64(2 * p.Output.EstimatedSize)
	if need > vp.Available {
		return fault.New(fault.NoSpace, "", "pool %s on %s has %d MiB free; publishing needs up to %d MiB", vp.Pool, vp.URI, vp.Available>>20, need>>20).
			WithHint("Free space in the pool, or choose a larger one. The upload and its published copy coexist until the upload's temporary volume is deleted.")
	}
	return nil
}

// recordPoolHardware records a VM's hardware in the report volume of its
// set in a pool, as RecordVMHardware does in a folder's report.
func (e *Engine) recordPoolHardware(ctx context.Context, pool, prefix string, hw *Hardware) error {
	h, err := e.host()
	if err != nil {
		return err
	}
	rep, ours := e.volumeReport(ctx, h, pool, prefix)
	if !ours || rep == nil || rep.Plan == nil {
		return fault.New(fault.InvalidRequest, "", "the report of %s/%s on %s is missing or not vmconv's", pool, prefix, hostconn.Redacted(e.LibvirtURI())).
			WithHint("Run terraform apply -replace on the conversion to convert the VM again.")
	}
	if reflect.DeepEqual(rep.Plan.Hardware, hw) {
		return nil
	}
	rep.Plan.Hardware = hw
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := volume.WriteReport(ctx, h, pool, prefix, b); err != nil {
		return err
	}
	return volume.WriteMarkdown(ctx, h, pool, prefix, []byte(rep.Markdown()))
}

// volumeReport reads a volume's report; ours is true when vmconv wrote it.
func (e *Engine) volumeReport(ctx context.Context, h volume.Storage, pool, name string) (*Report, bool) {
	b, ok, err := volume.ReadReport(ctx, h, pool, name)
	if err != nil || !ok {
		return nil, false
	}
	var r Report
	if json.Unmarshal(b, &r) == nil {
		return &r, r.Tool == "vmconv"
	}
	// A report cut short by a killed run is still vmconv's marker.
	return nil, bytes.Contains(b[:min(len(b), 64)], []byte(`"tool": "vmconv"`))
}

// uploadSlot gives the job's conversion slot back and waits for an upload
// slot, with a connection of its own.
func (e *Engine) uploadSlot(ctx context.Context, j *job) (*libvirt.Conn, func(), error) {
	if j.freeSlot != nil {
		j.freeSlot()
	}
	select {
	case e.upSem <- struct{}{}:
	case <-ctx.Done():
		return nil, nil, fault.Wrap(fault.Cancelled, "", ctx.Err(), "cancelled while waiting for a free upload slot")
	}
	c, put, err := e.uploadConn()
	if err != nil {
		<-e.upSem
		return nil, nil, err
	}
	return c, func() { put(); <-e.upSem }, nil
}

// publishVolume uploads the converted image into the pool, then removes
// the staging file: the runner keeps no copy.
func (e *Engine) publishVolume(ctx context.Context, j *job) error {
	p, d := j.plan, j.disks[0]
	vp := p.Output.Volume
	defer func() {
		os.Remove(d.tmp)
		d.tmp = ""
	}()
	h, release, err := e.uploadSlot(ctx, j)
	if err != nil {
		return err
	}
	defer release()
	if _, err := e.checkNotInUse(h, vp.Pool, []string{vp.Name}); err != nil {
		return err
	}
	src, err := volume.OpenFile(d.tmp)
	if err != nil {
		return fault.Wrap(fault.Internal, d.tmp, err, "cannot open the converted image")
	}
	defer src.Close()
	j.res.Output.Format, j.res.Output.SHA256, j.res.Output.Size = p.Output.Format, d.sha256, src.Size()
	var final *Report
	report := func(v *VolumeResult) ([]byte, error) {
		j.res.Output.Volume = v
		if v != nil {
			j.res.Output.Path = v.Path
		}
		final = &Report{Tool: "vmconv", Created: time.Now().UTC().Format(time.RFC3339), Plan: p, Result: j.res, Publisher: thisProcess()}
		return json.MarshalIndent(final, "", "  ")
	}
	publishing, _ := report(nil)
	start := time.Now()
	pub, err := volume.Publish(ctx, h, volume.Target{Pool: vp.Pool, Name: vp.Name, Format: p.Output.Format, Replace: vp.Replaces}, src, publishing,
		func(v volume.Published) ([]byte, error) { return report(volumeResult(vp, v)) }, j.uploadProgress(ctx, vp))
	if err != nil {
		return err
	}
	// Only now: the JSON report, written first, marks the volume as
	// vmconv's; the summary is of the final one.
	if err := volume.WriteMarkdown(ctx, h, vp.Pool, vp.Name, []byte(final.Markdown())); err != nil {
		return err
	}
	j.emit(EventInfo, "", "volume published", map[string]any{"pool": vp.Pool, "volume": vp.Name, "path": pub.Path,
		"allocation": pub.Allocation, "sent": pub.Sent, "seconds": time.Since(start).Seconds()})
	return nil
}

func volumeResult(vp *VolumePlan, v volume.Published) *VolumeResult {
	return &VolumeResult{URI: vp.URI, Pool: vp.Pool, Name: v.Name, Path: v.Path, Format: v.Format,
		Capacity: v.Capacity, Allocation: v.Allocation, Physical: v.Physical, Stamp: v.Stamp, Sent: v.Sent}
}

// uploadProgress reports an upload when its first chunk is sent, at most
// every progress.DefaultInterval after, and at its end.
func (j *job) uploadProgress(ctx context.Context, vp *VolumePlan) func(done, total int64) {
	m := &progress.Meter{}
	return func(done, total int64) {
		if done >= 4<<20 {
			testHold(ctx, "mid-upload")
		}
		if r, ok := m.Update(done, total); ok {
			j.sink.Event(Event{Time: time.Now(), Kind: EventProgress, Message: fmt.Sprintf("uploading to pool %s: %s", vp.Pool, r), Percent: r.Percent(), Fields: r.Fields()})
		}
	}
}

// publishVolumeSet uploads a whole VM's images, published in its staging
// folder, as one set of volumes with one report, then removes the folder.
func (e *Engine) publishVolumeSet(ctx context.Context, j *job) error {
	p := j.plan
	vp := p.Output.Volume
	defer os.RemoveAll(p.Output.Path)
	h, release, err := e.uploadSlot(ctx, j)
	if err != nil {
		return err
	}
	defer release()
	if _, err := e.checkNotInUse(h, vp.Pool, vp.Disks); err != nil {
		return err
	}
	var items []volume.Item
	for i, d := range j.res.Disks {
		src, err := volume.OpenFile(d.Path)
		if err != nil {
			return fault.Wrap(fault.Internal, d.Path, err, "cannot open the converted image")
		}
		defer src.Close()
		items = append(items, volume.Item{Name: vp.Disks[i], Format: p.Output.Format, Src: src})
	}
	j.res.Output.Path, j.res.Output.ReportPath = "", ""
	var final *Report
	report := func() ([]byte, error) {
		final = &Report{Tool: "vmconv", Created: time.Now().UTC().Format(time.RFC3339), Plan: p, Result: j.res, Publisher: thisProcess()}
		return json.MarshalIndent(final, "", "  ")
	}
	publishing, _ := report()
	ps, err := volume.PublishSet(ctx, h, vp.Pool, vp.Name, items, vp.Replaces, publishing, func(ps []volume.Published) ([]byte, error) {
		j.res.Output.Volume = &VolumeResult{URI: vp.URI, Pool: vp.Pool, Name: vp.Name, Format: p.Output.Format}
		for i, v := range ps {
			j.res.Disks[i].Volume = volumeResult(vp, v)
			j.res.Disks[i].Path = v.Path
			j.res.Output.Volume.Sent += v.Sent
		}
		return report()
	}, j.uploadProgress(ctx, vp))
	if err != nil {
		return err
	}
	if err := volume.WriteMarkdown(ctx, h, vp.Pool, vp.Name, []byte(final.Markdown())); err != nil {
		return err
	}
	j.emit(EventInfo, "", "VM published", map[string]any{"pool": vp.Pool, "volumes": len(ps), "sent": j.res.Output.Volume.Sent})
	return nil
}

// VolumeStatus is a published volume as its host has it now.
type VolumeStatus struct {
	Exists bool
	Info   volume.Info
	Stamp  string
	// Report is the volume's vmconv report, nil if it has none.
	Report *Report
}

// ReadVolume reads a pool output for drift detection and import.
func (e *Engine) ReadVolume(ctx context.Context, pool, name string) (VolumeStatus, error) {
	h, err := e.host()
	if err != nil {
		return VolumeStatus{}, err
	}
	info, ok, err := h.Volume(pool, name)
	if err != nil {
		return VolumeStatus{}, fault.Wrap(fault.HypervisorFailed, "", err, "cannot look up volume %s/%s", pool, name)
	}
	if !ok {
		return VolumeStatus{}, nil
	}
	st, err := volume.Stamp(ctx, h, info)
	if err != nil {
		return VolumeStatus{}, err
	}
	rep, _ := e.volumeReport(ctx, h, pool, name)
	return VolumeStatus{Exists: true, Info: info, Stamp: st, Report: rep}, nil
}

// DeleteVolume removes published volumes (a disk's, or a whole VM's set
// under the report of reportOf), their report and temporaries, unless a
// domain on the host uses one: libvirt is asked, so the hold is seen
// whoever defined the domain.
func (e *Engine) DeleteVolume(ctx context.Context, pool, reportOf string, names ...string) error {
	h, err := e.host()
	if err != nil {
		return err
	}
	if len(names) == 0 {
		names = []string{reportOf}
	}
	present, err := e.checkNotInUse(h, pool, names)
	if err != nil {
		return err
	}
	rep, ours := e.volumeReport(ctx, h, pool, reportOf)
	if len(present) > 0 && !ours {
		// The name is vmconv's in state, but what is there now has no
		// report of vmconv's: someone else's volume, which is kept.
		return fault.New(fault.OutputExists, "", "volume %s in pool %s has no vmconv report (%s%s), so it is not the one vmconv published; it is kept", strings.Join(present, ", "), pool, reportOf, volume.ReportSuffix).
			WithHint("Delete it on the host (virsh vol-delete --pool %s <volume>) if it is not needed, then run terraform destroy again.", pool)
	}
	if err := volume.Remove(h, pool, reportOf, names...); err != nil {
		return err
	}
	e.ReleaseSource(ctx, rep)
	return nil
}

// checkNotInUse refuses volumes a domain on the host uses, and returns
// those of names that exist. Any lookup that fails refuses too: a volume
// is never deleted or replaced on a guess.
func (e *Engine) checkNotInUse(h *libvirt.Conn, pool string, names []string) ([]string, error) {
	var present []string
	for _, name := range names {
		info, ok, err := h.Volume(pool, name)
		if err != nil {
			return nil, fault.Wrap(fault.HypervisorFailed, "", err, "cannot look up volume %s/%s", pool, name)
		}
		if !ok {
			continue
		}
		present = append(present, name)
		users, err := volumeUsers(h, info)
		if err != nil {
			return nil, fault.Wrap(fault.HypervisorFailed, "", err, "cannot list the domains of %s", hostconn.Redacted(e.LibvirtURI()))
		}
		if len(users) > 0 {
			return nil, fault.New(fault.DiskInUse, "", "volume %s in pool %s is in use by domain %s on %s", name, pool, strings.Join(users, ", "), hostconn.Redacted(e.LibvirtURI())).
				WithHint("Destroy the domain first (Terraform does, when the domain's disks refer to this conversion), or undefine it on the host.")
		}
	}
	return present, nil
}

// ReadVolumeSet reads a whole VM's volumes and its set's report, for
// drift detection and import; names are the volumes in the VM's order
// (nil: as the report lists them).
func (e *Engine) ReadVolumeSet(ctx context.Context, pool, reportOf string, names []string) (*Report, []VolumeStatus, error) {
	h, err := e.host()
	if err != nil {
		return nil, nil, err
	}
	rep, _ := e.volumeReport(ctx, h, pool, reportOf)
	if names == nil && rep != nil && rep.Plan != nil && rep.Plan.Output.Volume != nil {
		names = rep.Plan.Output.Volume.Disks
	}
	var out []VolumeStatus
	for _, n := range names {
		st, err := e.ReadVolume(ctx, pool, n)
		if err != nil {
			return nil, nil, err
		}
		st.Report = nil
		out = append(out, st)
	}
	return rep, out, nil
}

// volumeUsers names the domains whose disks are the volume, or overlays
// standing on it.
func volumeUsers(h *libvirt.Conn, info volume.Info) ([]string, error) {
	ds, err := h.List()
	if err != nil {
		return nil, err
	}
	var users []string
	for _, d := range ds {
		disks, _ := kvm.ObserveDisks(d.XML)
		for _, dk := range disks {
			if usesVolume(h, dk, info) {
				users = append(users, d.Name)
				break
			}
		}
	}
	return users, nil
}

// usesVolume tells whether a domain's disk is the volume or has it in its
// backing chain: the disk may name a file or a pool's volume, and overlays
// may stack (a user's snapshot on top of vmconv's overlay).
func usesVolume(h *libvirt.Conn, dk kvm.ObservedDisk, info volume.Info) bool {
	if dk.Volume != "" {
		if dk.Pool == info.Pool && dk.Volume == info.Name {
			return true
		}
		v, ok, err := h.Volume(dk.Pool, dk.Volume)
		if err != nil || !ok {
			return false
		}
		dk.Path = v.Path
	}
	path := dk.Path
	for depth := 0; depth < 16 && path != ""; depth++ {
		if path == info.Path {
			return true
		}
		_, backing, ok, err := h.VolumeByPath(path)
		if err != nil || !ok {
			return false
		}
		path = backing
	}
	return false
}

// volumeConversion reads what a pool output's report says about its guest,
// for a domain on the volume.
func (e *Engine) volumeConversion(pool, name string) (kvm.Conversion, bool) {
	h, err := e.host()
	if err != nil {
		return kvm.Conversion{}, false
	}
	rep, ok := e.volumeReport(context.Background(), h, pool, name)
	if !ok || rep == nil || rep.Plan == nil || rep.Result == nil {
		return kvm.Conversion{}, false
	}
	return kvm.Conversion{Guest: rep.Result.Guest, Fixes: fixesOf(rep.Plan.Request.Fixes)}, true
}
