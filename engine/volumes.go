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
	"regexp"
	"strings"
	"time"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/engine/hostconn"
	"github.com/vmconv/terraform-provider-vmconv/engine/internal/libvirt"
	"github.com/vmconv/terraform-provider-vmconv/engine/kvm"
	"github.com/vmconv/terraform-provider-vmconv/engine/volume"
)

// VolumeReportSuffix names a pool output's report volume: "<volume>.vmconv.json".
const VolumeReportSuffix = volume.ReportSuffix

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
// request's output path at its staging file.
func (e *Engine) planVolume(ctx context.Context, req *Request, opts PlanOptions) (*VolumePlan, error) {
	o := &req.Output
	switch {
	case o.Dir != "":
		return nil, fault.New(fault.InvalidRequest, "", "output.pool is not supported for whole VMs yet").
			WithHint("Convert each disk with vmconv_disk_conversion into the pool, or use output.dir.")
	case o.Path != "":
		return nil, fault.New(fault.InvalidRequest, o.Path, "both output.path and output.pool are set").
			WithHint("output.path writes a file on this machine; output.pool and output.volume publish a volume on the provider's libvirt host. Set one.")
	case o.Pool == "" || o.Volume == "":
		return nil, fault.New(fault.InvalidRequest, "", "output.pool and output.volume go together").
			WithHint("Name the storage pool and the volume to create in it.")
	case !volumeName.MatchString(o.Volume) || volume.IsReport(o.Volume) || volume.IsPart(o.Volume, ""):
		return nil, fault.New(fault.InvalidRequest, "", "%q is not a volume name vmconv can publish", o.Volume).
			WithHint("Use letters, digits, '.', '_', '+' and '-' (no '/'), not ending in %s.", volume.ReportSuffix)
	}
	h, err := e.host()
	if err != nil {
		return nil, err
	}
	vp := &VolumePlan{URI: hostconn.Redacted(e.LibvirtURI()), Pool: o.Pool, Name: o.Volume, Format: o.Format}
	pi, err := h.Pool(o.Pool)
	if err != nil {
		f := fault.Wrap(fault.PoolMissing, "", err, "storage pool %s is not usable on %s", o.Pool, vp.URI).WithFact("URI", vp.URI)
		if errors.Is(err, libvirt.ErrNoPool) {
			f = f.WithHint("Create it on the host (virsh pool-define-as %s dir --target <folder>; virsh pool-start %s), or name an existing one (virsh pool-list).", o.Pool, o.Pool)
		}
		return nil, f
	}
	vp.PoolPath, vp.Available = pi.Path, pi.Available
	if _, ok, err := h.Volume(o.Pool, o.Volume); err != nil {
		return nil, fault.Wrap(fault.HypervisorFailed, "", err, "cannot look up volume %s/%s", o.Pool, o.Volume)
	} else if ok {
		_, ours := e.volumeReport(ctx, h, o.Pool, o.Volume)
		switch {
		case ours && (opts.ManagedOutput || o.Overwrite):
			vp.Replaces = true
		case !ours && o.Overwrite:
			vp.Replaces = true
		default:
			hint := "Choose another output.volume, or delete the volume (virsh vol-delete --pool %s %s) if it is not needed."
			if ours {
				hint = "vmconv published it, for another resource or an apply Terraform did not record: set output.overwrite = true to replace it, or delete it (virsh vol-delete --pool %s %s)."
			}
			return nil, fault.New(fault.OutputExists, "", "volume %s already exists in pool %s on %s", o.Volume, o.Pool, vp.URI).WithHint(hint, o.Pool, o.Volume)
		}
	}
	o.Path = e.stagingPath(o.Pool, o.Volume)
	if err := os.MkdirAll(filepath.Dir(o.Path), 0o700); err != nil {
		return nil, fault.Wrap(fault.OutputNotWritable, filepath.Dir(o.Path), err, "cannot create the staging folder for uploads")
	}
	return vp, nil
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

// publishVolume uploads the converted image into the pool, then removes
// the staging file: the runner keeps no copy.
func (e *Engine) publishVolume(ctx context.Context, j *job) error {
	p, d := j.plan, j.disks[0]
	vp := p.Output.Volume
	defer func() {
		os.Remove(d.tmp)
		d.tmp = ""
	}()
	h, err := e.host()
	if err != nil {
		return err
	}
	select {
	case e.upSem <- struct{}{}:
		defer func() { <-e.upSem }()
	case <-ctx.Done():
		return fault.Wrap(fault.Cancelled, "", ctx.Err(), "cancelled while waiting for a free upload slot")
	}
	src, err := volume.OpenFile(d.tmp)
	if err != nil {
		return fault.Wrap(fault.Internal, d.tmp, err, "cannot open the converted image")
	}
	defer src.Close()
	j.res.Output.Format, j.res.Output.SHA256, j.res.Output.Size = p.Output.Format, d.sha256, src.Size()
	report := func(v *VolumeResult) ([]byte, error) {
		j.res.Output.Volume = v
		if v != nil {
			j.res.Output.Path = v.Path
		}
		return json.MarshalIndent(Report{Tool: "vmconv", Created: time.Now().UTC().Format(time.RFC3339), Plan: p, Result: j.res, Publisher: thisProcess()}, "", "  ")
	}
	publishing, _ := report(nil)
	start, last := time.Now(), time.Time{}
	pub, err := volume.Publish(ctx, h, volume.Target{Pool: vp.Pool, Name: vp.Name, Format: p.Output.Format, Replace: vp.Replaces}, src, publishing,
		func(v volume.Published) ([]byte, error) {
			return report(&VolumeResult{URI: vp.URI, Pool: vp.Pool, Name: vp.Name, Path: v.Path, Format: v.Format,
				Capacity: v.Capacity, Allocation: v.Allocation, Physical: v.Physical, Stamp: v.Stamp, Sent: v.Sent})
		},
		func(done, total int64) {
			if done >= 4<<20 {
				testHold(ctx, "mid-upload")
			}
			if time.Since(last) >= 5*time.Second || done == total {
				last = time.Now()
				j.emit(EventProgress, "", fmt.Sprintf("uploading to %s/%s: %d of %d MiB", vp.Pool, vp.Name, done>>20, total>>20),
					map[string]any{"done": done, "total": total})
			}
		})
	if err != nil {
		return err
	}
	j.emit(EventInfo, "", "volume published", map[string]any{"pool": vp.Pool, "volume": vp.Name, "path": pub.Path,
		"allocation": pub.Allocation, "sent": pub.Sent, "seconds": time.Since(start).Seconds()})
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

// DeleteVolume removes a published volume, its report and temporaries,
// unless a domain on the host uses it: libvirt is asked, so the hold is
// seen whoever defined the domain.
func (e *Engine) DeleteVolume(ctx context.Context, pool, name string) error {
	h, err := e.host()
	if err != nil {
		return err
	}
	if info, ok, err := h.Volume(pool, name); err == nil && ok {
		users, err := volumeUsers(h, info)
		if err != nil {
			return fault.Wrap(fault.HypervisorFailed, "", err, "cannot list the domains of %s", hostconn.Redacted(e.LibvirtURI()))
		}
		if len(users) > 0 {
			return fault.New(fault.DiskInUse, "", "volume %s in pool %s is in use by domain %s on %s", name, pool, strings.Join(users, ", "), hostconn.Redacted(e.LibvirtURI())).
				WithHint("Destroy the domain first (Terraform does, when the domain's disks refer to this conversion), or undefine it on the host.")
		}
	}
	return volume.Remove(h, pool, name)
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
			_, backing, ok, err := h.VolumeByPath(dk.Path)
			if dk.Path == info.Path || (err == nil && ok && backing == info.Path) {
				users = append(users, d.Name)
				break
			}
		}
	}
	return users, nil
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
