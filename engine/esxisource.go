package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"

	"github.com/vmconv/terraform-provider-vmconv/engine/esxissh"
	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/engine/fetch"
)

// remoteESXi stats the chain on the host (for plans) or copies it into the
// cache (fetchNow). The fingerprint covers every file's size and time.
func (e *Engine) remoteESXi(ctx context.Context, s *ESXiSpec, fetchNow bool, sink Sink) (local, fp string, head *fetch.Head, err error) {
	remote, err := esxissh.RemotePath(s.Path)
	if err != nil {
		return "", "", nil, err
	}
	c, err := esxissh.Dial(ctx, esxissh.Options{Host: s.Host, User: s.User, PrivateKey: s.PrivateKey, HostKey: s.HostKey})
	if err != nil {
		return "", "", nil, err
	}
	defer c.Close()
	fingerprint := func(files []esxissh.FileInfo) (string, int64) {
		h := sha256.New()
		var total int64
		fmt.Fprintf(h, "%s\x00%s\x00", s.Host, remote)
		for _, f := range files {
			fmt.Fprintf(h, "%s|%d|%d\x00", f.Path, f.Size, f.ModTime.UnixNano())
			total += f.Size
		}
		return "esxi:v1:" + hex.EncodeToString(h.Sum(nil)), total
	}
	if !fetchNow {
		files, err := c.Stat(remote)
		if err != nil {
			return "", "", nil, err
		}
		fp, total := fingerprint(files)
		return "", fp, &fetch.Head{Length: total, AcceptRanges: true}, nil
	}
	dir := e.cacheEntry("esxi", s.Host+"\x00"+remote)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", nil, fault.Wrap(fault.OutputNotWritable, dir, err, "cannot create the copy folder")
	}
	// The copy walks the chain once and reports each file as it found it:
	// the fingerprint comes from the same walk.
	f, err := c.Fetch(ctx, remote, dir)
	if err != nil {
		return "", "", nil, err
	}
	fp, _ = fingerprint(f.Remote)
	if sink != nil {
		sink.Event(Event{Kind: EventInfo, Stage: StageFetch, Message: fmt.Sprintf("copied %d file(s) from %s over SSH (%d reused, %d resumed)", len(f.Files), s.Host, f.Reused, f.Resumed)})
	}
	return f.Head, fp, nil, nil
}
