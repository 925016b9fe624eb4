package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/engine/fetch"
)

// Logf receives the transports' messages (URLs redacted, no header values).
type fetchLog struct{ sink Sink }

func (l fetchLog) Log(level, msg string, f map[string]any) {
	if l.sink != nil {
		l.sink.Event(Event{Kind: EventInfo, Stage: StageFetch, Message: msg, Fields: f})
	}
}

// urlCachePath is where a URL source's download lives: keyed by the full
// URL and the expected checksum, so a new URL or checksum downloads anew.
func (e *Engine) urlCachePath(u *URLSpec) string {
	name := "disk"
	if pu, err := url.Parse(u.Href); err == nil && path.Base(pu.Path) != "/" && path.Base(pu.Path) != "." {
		name = path.Base(pu.Path)
	}
	return filepath.Join(e.cacheEntry("url", u.Href+"\x00"+strings.ToLower(u.SHA256)), name)
}

// urlFingerprint identifies the remote object from its metadata: the
// expected checksum when the user gave one, else the server's ETag or
// Last-Modified and length. It never contains the URL's secrets.
func urlFingerprint(u *URLSpec, etag, lastModified string, length int64) string {
	// The strongest validator the server gives: a checksum the user
	// pinned, else the ETag, else Last-Modified; with the length.
	id := strings.ToLower(u.SHA256)
	switch {
	case id != "":
	case etag != "":
		id = fmt.Sprintf("etag:%s|%d", etag, length)
	default:
		id = fmt.Sprintf("modified:%s|%d", lastModified, length)
	}
	h := sha256.Sum256([]byte(u.Href + "\x00" + id))
	return "url:v1:" + hex.EncodeToString(h[:])
}

// remoteURL makes a URL source local when it may (fetch, or already
// downloaded), and otherwise says what the server says about it.
func (e *Engine) remoteURL(ctx context.Context, src SourceSpec, fetchNow bool, sink Sink) (local, fp string, head *fetch.Head, err error) {
	u := src.URL
	dest := e.urlCachePath(u)
	o := fetch.HTTPOptions{Headers: u.Headers, SHA256: u.SHA256, Logger: fetchLog{sink}}
	if _, _, ok := fetch.Complete(dest); ok && !fetchNow {
		m, _ := fetch.ReadMeta(dest)
		return dest, urlFingerprint(u, m.ETag, m.LastModified, m.Length), nil, nil
	}
	if !fetchNow {
		h, err := fetch.HTTPHead(ctx, u.Href, o)
		if err != nil {
			return "", "", nil, err
		}
		// What the server announces must fit in the cache; the download
		// checks again, and bounds a body without a length as it comes.
		if h.Length > 0 {
			if err := fetch.CheckRoom(filepath.Dir(dest), fetch.Redact(u.Href), h.Length-fetch.Partial(dest)); err != nil {
				return "", "", nil, err
			}
		}
		return "", urlFingerprint(u, h.ETag, h.LastModified, h.Length), h, nil
	}
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return "", "", nil, fault.Wrap(fault.OutputNotWritable, filepath.Dir(dest), err, "cannot create the download folder")
	}
	if _, err := fetch.HTTP(ctx, u.Href, dest, o); err != nil {
		return "", "", nil, err
	}
	m, _ := fetch.ReadMeta(dest)
	return dest, urlFingerprint(u, m.ETag, m.LastModified, m.Length), nil, nil
}

// deferredPlan plans a remote source that is not downloaded yet from its
// metadata alone.
func (e *Engine) deferredPlan(p *Plan, req Request, fp string, h *fetch.Head, opts PlanOptions) (*Plan, error) {
	kind, shown, fetch := describeSource(req.Source, h)
	p.Source = SourcePlan{Kind: kind, Path: shown, Fingerprint: fp, Deferred: true, RemoteSize: h.Length}
	if err := e.checkOutputPath(req, nil, opts); err != nil {
		return nil, err
	}
	p.Output.Path, p.Output.Format, p.Output.Compression = req.Output.Path, req.Output.Format, req.Output.Compression
	p.Stages = []StagePlan{
		{StageFetch, true, fetch},
		{StageFlatten, true, "the format and chain are read after FETCH"},
		inspectStagePlan(req), fixStagePlan(req), {StageConvert, true, convertReason(p)}, bootStagePlan(req),
	}
	if p.Stage(StageInspect).Run {
		p.Guest = &GuestPlan{How: "skipped", Reason: "a remote source is planned from its metadata; the guest is inspected at apply (provider plan_fetch = true fetches at plan time)"}
	}
	return p, nil
}

// describeSource names a source for plans, without its secrets, and says
// what FETCH does with it. h, when known, is what the remote end reported
// (the plan has not fetched it).
func describeSource(src SourceSpec, h *fetch.Head) (kind, shown, fetchReason string) {
	size := ""
	if h != nil && h.Length > 0 {
		size = fmt.Sprintf(" (%d bytes)", h.Length)
	}
	resume := "resumable"
	if h != nil && !h.AcceptRanges {
		resume = "the server does not advertise ranges: an interrupted download restarts"
	}
	switch {
	case src.ESXi != nil:
		shown = src.ESXi.Host + ":" + src.ESXi.Path
		return "esxi_ssh", shown, fmt.Sprintf("copy %s with its extents and snapshot parents%s over SFTP into the cache, host key pinned (resumed, and reused while unchanged)", shown, size)
	case src.VSphere != nil:
		return "vsphere", shownVSphere(src.VSphere), fmt.Sprintf("copy disk %d%s of VM %q with its backing chain through the datastore's /folder interface into the cache%s",
			src.VSphere.Disk, size, src.VSphere.VM, snapshotNote(src.VSphere))
	case src.URL != nil:
		return "url", src.URL.Shown, fmt.Sprintf("download%s from %s into the cache (%s; verified before use)", size, src.URL.Shown, resume)
	case src.OVAURL != nil:
		return "ova", src.OVAURL.Shown, fmt.Sprintf("download the OVA%s from %s into the cache (%s), then extract disk %d, streamed once and kept by the archive's fingerprint",
			size, src.OVAURL.Shown, resume, src.OVADisk)
	case src.OVA != "":
		return "ova", src.OVA, fmt.Sprintf("extract disk %d from the OVA, streamed once and kept by the archive's fingerprint", src.OVADisk)
	}
	return "path", src.Path, ""
}

func snapshotNote(s *VSphereSpec) string {
	if s.Snapshot {
		return ", read from a snapshot taken for the copy and removed after it"
	}
	return ", read as it is (no snapshot: the VM should be powered off)"
}
