package engine_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vmconv/terraform-provider-vmconv/engine"
	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/internal/libvirttest"
	"github.com/vmconv/terraform-provider-vmconv/internal/testimg"
)

// sparseSource is a 1 GiB VMDK with 32 MiB of data: 24 MiB at its start
// and 8 MiB at 700 MiB.
func sparseSource(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	raw := filepath.Join(dir, "web.raw")
	f, err := os.Create(raw)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(1 << 30)
	buf := make([]byte, 8*mib)
	for i := range buf {
		buf[i] = byte(i*13 + i/4096)
	}
	for _, off := range []int64{0, 8 * mib, 16 * mib, 700 * mib} {
		f.WriteAt(buf, off)
	}
	f.Close()
	img := filepath.Join(dir, "web.vmdk")
	if err := testimg.Run("qemu-img", "convert", "-f", "raw", "-O", "vmdk", raw, img); err != nil {
		t.Fatal(err)
	}
	os.Remove(raw)
	return img
}

func remoteConfig(t *testing.T, h *libvirttest.Host) engine.Config {
	return engine.Config{WorkDir: t.TempDir(), CacheDir: t.TempDir(), LibvirtURI: h.BareURI, SSHKeyFile: h.KeyFile, SSHKnownHosts: h.KnownHosts}
}

func poolRequest(src, pool, vol string) engine.Request {
	return engine.Request{Source: engine.SourceSpec{Path: src}, Output: engine.OutputSpec{Pool: pool, Volume: vol, Format: "qcow2"}}
}

// bigFiles lists the files over 1 MiB under dir: what a staging folder
// must not keep after an upload.
func bigFiles(dir string) []string {
	var out []string
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() && fi.Size() > mib {
			out = append(out, p)
		}
		return nil
	})
	return out
}

func TestVolumeOutputOnRemoteHost(t *testing.T) {
	h := libvirttest.Start(t)
	src := sparseSource(t)
	cfg := remoteConfig(t, h)
	e, err := engine.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	req := poolRequest(src, h.Pool, "web.qcow2")
	p, err := e.Plan(ctx, req, engine.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if vp := p.Output.Volume; vp == nil || vp.Pool != h.Pool || vp.Name != "web.qcow2" || vp.PoolPath != h.PoolPath || strings.Contains(vp.URI, "keyfile") {
		t.Fatalf("planned volume %+v", p.Output.Volume)
	}
	if r := p.Stage(engine.StageConvert).Reason; !strings.Contains(r, "pool "+h.Pool) {
		t.Fatalf("the plan does not say the image is uploaded: %q", r)
	}
	res, err := e.Apply(ctx, p, nil, engine.ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	v := res.Output.Volume
	if v == nil || v.Capacity != 1<<30 || !strings.HasPrefix(v.Path, h.PoolPath+"/") {
		t.Fatalf("published volume %+v", v)
	}
	// Holes stay holes: on the host and on the wire.
	if v.Allocation < 32*mib || v.Allocation > 40*mib {
		t.Errorf("the volume allocates %d MiB for 32 MiB of data", v.Allocation/mib)
	}
	if v.Sent > 40*mib {
		t.Errorf("%d MiB crossed the connection for 32 MiB of data", v.Sent/mib)
	}
	if out, err := h.Exec(t, "qemu-img", "compare", "-f", "vmdk", "-F", "qcow2", src, v.Path); err != nil {
		t.Fatalf("the volume's content is not the source's: %v %s", err, out)
	}
	if big := bigFiles(cfg.CacheDir); len(big) > 0 {
		t.Errorf("the runner kept a copy after the upload: %v", big)
	}
	h.RunnerViewUntouched(t)
	if got := h.Volumes(t); strings.Join(got, " ") != "web.qcow2 web.qcow2.vmconv.json web.qcow2.vmconv.md" {
		t.Errorf("pool holds %v, want the volume and its reports only", got)
	}
	if md, err := h.Exec(t, "cat", h.PoolPath+"/web.qcow2.vmconv.md"); err != nil || !strings.HasPrefix(string(md), "# vmconv: ") ||
		!strings.Contains(string(md), "volume `web.qcow2` in pool `"+h.Pool+"`") {
		t.Errorf("the Markdown report volume: %v\n%s", err, md)
	}

	// A raw image is mostly holes: they must not cross the connection, nor
	// be allocated on the host.
	rawReq := req
	rawReq.Output.Volume, rawReq.Output.Format = "web.raw", "raw"
	rp, err := e.Plan(ctx, rawReq, engine.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rres, err := e.Apply(ctx, rp, nil, engine.ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rv := rres.Output.Volume; rv.Format != "raw" || rv.Capacity != 1<<30 || rv.Allocation > 40*mib || rv.Sent > 40*mib {
		t.Errorf("raw volume: %d MiB allocated, %d MiB sent for 32 MiB of data (%+v)", rv.Allocation/mib, rv.Sent/mib, rv)
	}
	if out, err := h.Exec(t, "qemu-img", "compare", "-f", "vmdk", "-F", "raw", src, rres.Output.Volume.Path); err != nil {
		t.Fatalf("the raw volume's content is not the source's: %v %s", err, out)
	}
	if err := e.DeleteVolume(ctx, h.Pool, "web.raw"); err != nil {
		t.Fatal(err)
	}

	st, err := e.ReadVolume(ctx, h.Pool, "web.qcow2")
	if err != nil || !st.Exists || st.Stamp != v.Stamp || st.Report == nil || st.Report.Result.Output.Volume.Stamp != v.Stamp {
		t.Fatalf("read back: %+v %v (published stamp %s)", st, err, v.Stamp)
	}
	if _, err := e.Plan(ctx, req, engine.PlanOptions{}); !fault.Is(err, fault.OutputExists) {
		t.Fatalf("planning the same volume again for another resource: %v", err)
	}
	if p2, err := e.Plan(ctx, req, engine.PlanOptions{ManagedOutput: true}); err != nil || !p2.Output.Volume.Replaces {
		t.Fatalf("re-planning its own volume: %v", err)
	}

	// A guest writing through the volume out of band: the stamp sees it.
	if out, err := h.Exec(t, "qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 900M 64k", v.Path); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	if st, err := e.ReadVolume(ctx, h.Pool, "web.qcow2"); err != nil || st.Stamp == v.Stamp {
		t.Fatalf("an out-of-band write left the stamp as it was: %v", err)
	}
	deleteRefusedWhileHeld(t, e, h, "web.qcow2", v.Path)
	if err := e.DeleteVolume(ctx, h.Pool, "web.qcow2"); err != nil {
		t.Fatal(err)
	}
	// Nothing left: the Markdown report volume went with the rest.
	if got := h.Volumes(t); len(got) != 0 {
		t.Errorf("delete left %v", got)
	}
	if st, err := e.ReadVolume(ctx, h.Pool, "web.qcow2"); err != nil || st.Exists {
		t.Fatalf("a deleted volume reads as %+v, %v", st, err)
	}
	h.RunnerViewUntouched(t)
}

func TestVolumeHostDiagnostics(t *testing.T) {
	h := libvirttest.Start(t)
	src := sparseSource(t)
	for name, c := range map[string]struct {
		cfg  func(engine.Config) engine.Config
		code fault.Code
		says string
	}{
		"unreachable":    {func(c engine.Config) engine.Config { c.LibvirtURI = libvirttest.UnreachableURI(t); return c }, fault.HypervisorUnreachable, "host is up"},
		"wrong host key": {func(c engine.Config) engine.Config { c.SSHKnownHosts = h.WrongKnownHosts; return c }, fault.HostKeyMismatch, "known_hosts"},
		"no such pool":   {func(c engine.Config) engine.Config { return c }, fault.PoolMissing, "pool-define-as"},
	} {
		t.Run(name, func(t *testing.T) {
			e, err := engine.New(c.cfg(remoteConfig(t, h)))
			if err != nil {
				t.Fatal(err)
			}
			pool := h.Pool
			if name == "no such pool" {
				pool = "nosuchpool"
			}
			_, err = e.Plan(context.Background(), poolRequest(src, pool, "web.qcow2"), engine.PlanOptions{})
			f, ok := err.(*fault.Error)
			if !ok || f.Code != c.code || !strings.Contains(f.Hint, c.says) || !strings.Contains(f.Error(), "127.0.0.1") {
				t.Fatalf("got %v", err)
			}
			if strings.Contains(f.Error(), h.KeyFile) {
				t.Fatalf("the diagnostic shows the URI's query: %v", f)
			}
		})
	}
}

// TestVolumeNameRefused: a volume may not be named as another's report
// would be, JSON or Markdown, nor as a temporary; refused before the host
// is dialled.
func TestVolumeNameRefused(t *testing.T) {
	e, err := engine.New(engine.Config{WorkDir: t.TempDir(), CacheDir: t.TempDir(), LibvirtURI: "qemu+ssh://root@192.0.2.1/system"})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"web.qcow2.vmconv.json", "web.qcow2.vmconv.md", "web.qcow2.vmconv-part-0123456789ab"} {
		_, err := e.Plan(context.Background(), poolRequest("/nonexistent.vmdk", "default", name), engine.PlanOptions{})
		if !fault.Is(err, fault.InvalidRequest) || !strings.Contains(err.Error(), "not a volume name") {
			t.Errorf("volume %s: %v", name, err)
		}
	}
}

// childUpload is TestMain's child for the kill test: it converts into the
// pool and blocks in the middle of the upload.
func childUpload() int {
	e, err := engine.New(engine.Config{WorkDir: os.Getenv("VMCONV_TEST_CHILD_WORK"), CacheDir: os.Getenv("VMCONV_TEST_CHILD_CACHE"),
		LibvirtURI: os.Getenv("VMCONV_TEST_CHILD_URI"), SSHKeyFile: os.Getenv("VMCONV_TEST_CHILD_KEY"), SSHKnownHosts: os.Getenv("VMCONV_TEST_CHILD_KH")})
	if err != nil {
		return 3
	}
	p, err := e.Plan(context.Background(), poolRequest(os.Getenv("VMCONV_TEST_CHILD_SRC"), os.Getenv("VMCONV_TEST_CHILD_POOL"), "web.qcow2"), engine.PlanOptions{})
	if err != nil {
		return 4
	}
	e.Apply(context.Background(), p, nil, engine.ApplyOptions{})
	return 0
}

func TestVolumeUploadKilled(t *testing.T) {
	h := libvirttest.Start(t)
	src := sparseSource(t)
	cfg := remoteConfig(t, h)
	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), "VMCONV_TEST_CHILD_POOL="+h.Pool, "VMCONV_TEST_CHILD_SRC="+src, "VMCONV_TEST_CHILD_WORK="+cfg.WorkDir,
		"VMCONV_TEST_CHILD_CACHE="+cfg.CacheDir, "VMCONV_TEST_CHILD_URI="+cfg.LibvirtURI, "VMCONV_TEST_CHILD_KEY="+cfg.SSHKeyFile,
		"VMCONV_TEST_CHILD_KH="+cfg.SSHKnownHosts, engine.TestHoldEnv+"=mid-upload")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer child.Process.Kill()
	part := ""
	for deadline := time.Now().Add(3 * time.Minute); part == "" && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		for _, n := range h.Volumes(t) {
			if strings.HasPrefix(n, "web.qcow2.vmconv-part-") {
				part = n
			}
		}
	}
	if part == "" {
		t.Fatal("the child never started uploading")
	}
	time.Sleep(time.Second) // the child holds once 4 MiB are sent
	child.Process.Signal(syscall.SIGKILL)
	child.Wait()
	if got := h.Volumes(t); len(got) != 1 || got[0] != part {
		t.Fatalf("after kill -9 mid-upload the pool holds %v; want only the temporary %s", got, part)
	}
	// The re-apply converges: the temporary is swept, the volume published.
	e, err := engine.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p, err := e.Plan(context.Background(), poolRequest(src, h.Pool, "web.qcow2"), engine.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Apply(context.Background(), p, nil, engine.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := h.Volumes(t); strings.Join(got, " ") != "web.qcow2 web.qcow2.vmconv.json web.qcow2.vmconv.md" {
		t.Fatalf("after the re-apply the pool holds %v", got)
	}
	if big := bigFiles(cfg.CacheDir); len(big) > 0 {
		t.Errorf("staging files left: %v", big)
	}
	h.RunnerViewUntouched(t)
}

func TestVolumeVMOnRemoteHost(t *testing.T) {
	h := libvirttest.Start(t)
	a, b := sparseSource(t), sparseSource(t)
	cfg := remoteConfig(t, h)
	e, err := engine.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	req := engine.Request{Source: engine.SourceSpec{Disks: []engine.SourceSpec{{Path: a}, {Path: b}}},
		Output: engine.OutputSpec{Pool: h.Pool, Volume: "db", VM: true, Format: "qcow2"}}
	p, err := e.Plan(ctx, req, engine.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if vp := p.Output.Volume; vp == nil || vp.Name != "db" || strings.Join(vp.Disks, " ") != "db-disk0.qcow2 db-disk1.qcow2" {
		t.Fatalf("planned volumes %+v", p.Output.Volume)
	}
	res, err := e.Apply(ctx, p, nil, engine.ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := h.Volumes(t); strings.Join(got, " ") != "db-disk0.qcow2 db-disk1.qcow2 db.vmconv.json db.vmconv.md" {
		t.Fatalf("pool holds %v", got)
	}
	for i, src := range []string{a, b} {
		v := res.Disks[i].Volume
		if v == nil || v.Allocation > 40*mib {
			t.Fatalf("disk %d: %+v", i, v)
		}
		if out, err := h.Exec(t, "qemu-img", "compare", "-f", "vmdk", "-F", "qcow2", src, v.Path); err != nil {
			t.Fatalf("disk %d is not its source: %v %s", i, err, out)
		}
	}
	if big := bigFiles(cfg.CacheDir); len(big) > 0 {
		t.Errorf("the runner kept copies after the upload: %v", big)
	}
	h.RunnerViewUntouched(t)
	rep, disks, err := e.ReadVolumeSet(ctx, h.Pool, "db", nil)
	if err != nil || rep == nil || len(disks) != 2 || !disks[1].Exists || disks[1].Stamp != rep.Result.Disks[1].Volume.Stamp {
		t.Fatalf("read back: %+v %+v %v", rep, disks, err)
	}
	if _, err := e.Plan(ctx, req, engine.PlanOptions{}); !fault.Is(err, fault.OutputExists) {
		t.Fatalf("planning the same VM again for another resource: %v", err)
	}
	if p2, err := e.Plan(ctx, req, engine.PlanOptions{ManagedOutput: true}); err != nil || !p2.Output.Volume.Replaces {
		t.Fatalf("re-planning its own VM: %v", err)
	}
	if err := e.DeleteVolume(ctx, h.Pool, "db", rep.Plan.Output.Volume.Disks...); err != nil {
		t.Fatal(err)
	}
	if got := h.Volumes(t); len(got) != 0 {
		t.Errorf("delete left %v", got)
	}
}

// TestVolumeParallelUploads publishes three conversions into one pool at
// once. libvirt refuses to rescan a pool while an upload or clone runs in
// it, so every publish has to wait its turn for the rescan. Then, on the
// same host, MaxUploads = 1 must keep two uploads from overlapping.
func TestVolumeParallelUploads(t *testing.T) {
	h := libvirttest.Start(t)
	if peak := publishAtOnce(t, h, 3, 2, "p"); peak > 2 {
		t.Errorf("%d uploads ran at once with MaxUploads = 2", peak)
	}
	if got := strings.Join(h.Volumes(t), " "); got != "p0.qcow2 p0.qcow2.vmconv.json p0.qcow2.vmconv.md p1.qcow2 p1.qcow2.vmconv.json p1.qcow2.vmconv.md "+
		"p2.qcow2 p2.qcow2.vmconv.json p2.qcow2.vmconv.md" {
		t.Fatalf("pool holds %s", got)
	}
	if peak := publishAtOnce(t, h, 3, 1, "q"); peak != 1 {
		t.Errorf("%d uploads ran at once with MaxUploads = 1", peak)
	}
}

// publishAtOnce plans and applies n conversions at once into h's pool,
// named <prefix><i>.qcow2, and returns how many uploads overlapped at most.
// An upload spans its first and its last progress event (the engine emits
// one when the first chunk is sent and one when the last is).
func publishAtOnce(t *testing.T, h *libvirttest.Host, n, maxUploads int, prefix string) int {
	t.Helper()
	cfg := remoteConfig(t, h)
	cfg.MaxParallel, cfg.MaxUploads = n, maxUploads
	e, err := engine.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	active, peak := 0, 0
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		src := sparseSource(t)
		go func(i int) {
			started := false
			sink := engine.SinkFunc(func(ev engine.Event) {
				if ev.Kind != engine.EventProgress || !strings.HasPrefix(ev.Message, "uploading to pool") {
					return
				}
				mu.Lock()
				defer mu.Unlock()
				if !started {
					started = true
					active++
					peak = max(peak, active)
				}
				if ev.Fields["done_bytes"] == ev.Fields["total_bytes"] {
					active--
				}
			})
			p, err := e.Plan(context.Background(), poolRequest(src, h.Pool, fmt.Sprintf("%s%d.qcow2", prefix, i)), engine.PlanOptions{})
			if err == nil {
				_, err = e.Apply(context.Background(), p, sink, engine.ApplyOptions{})
			}
			errs <- err
		}(i)
	}
	for i := 0; i < n; i++ {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if peak == 0 {
		t.Fatal("no upload progress was reported")
	}
	return peak
}

// deleteRefusedWhileHeld defines domains on the host that hold the volume
// the ways a user's own domains may: by pool and volume name (<disk
// type='volume'>), and through a chain of the user's overlays. Deleting the
// volume must be refused while each exists.
func deleteRefusedWhileHeld(t *testing.T, e *engine.Engine, h *libvirttest.Host, name, path string) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	snap1, snap2 := h.PoolPath+"/user-snap1.qcow2", h.PoolPath+"/user-snap2.qcow2"
	for _, c := range [][]string{{snap1, path}, {snap2, snap1}} {
		if out, err := h.Exec(t, "qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", c[1], c[0]); err != nil {
			t.Fatalf("%v %s", err, out)
		}
	}
	h.Virsh(t, "pool-refresh", h.Pool)
	for _, disk := range []string{
		fmt.Sprintf(`<disk type='volume' device='disk'><driver name='qemu' type='qcow2'/><source pool='%s' volume='%s'/><target dev='vda' bus='virtio'/></disk>`, h.Pool, name),
		fmt.Sprintf(`<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='%s'/><target dev='vda' bus='virtio'/></disk>`, snap2),
	} {
		x := filepath.Join(dir, "holder.xml")
		os.WriteFile(x, []byte(`<domain type='qemu'><name>holder</name><memory unit='MiB'>64</memory><os><type arch='x86_64'>hvm</type></os><devices>`+disk+`</devices></domain>`), 0o644)
		h.Virsh(t, "define", x)
		err := e.DeleteVolume(ctx, h.Pool, name)
		h.Virsh(t, "undefine", "holder")
		if !fault.Is(err, fault.DiskInUse) || !strings.Contains(err.Error(), "holder") {
			t.Fatalf("deleting %s while domain holder uses it as %s: %v", name, disk, err)
		}
	}
	h.Virsh(t, "vol-delete", "--pool", h.Pool, "user-snap2.qcow2")
	h.Virsh(t, "vol-delete", "--pool", h.Pool, "user-snap1.qcow2")
}
