package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"

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
	files, err := c.Stat(remote)
	if err != nil {
		return "", "", nil, err
	}
	h := sha256.New()
	var total int64
	fmt.Fprintf(h, "%s\x00%s\x00", s.Host, remote)
	for _, f := range files {
		fmt.Fprintf(h, "%s|%d|%d\x00", f.Path, f.Size, f.ModTime.UnixNano())
		total += f.Size
	}
	fp = "esxi:v1:" + hex.EncodeToString(h.Sum(nil))
	if !fetchNow {
		return "", fp, &fetch.Head{Length: total, AcceptRanges: true}, nil
	}
	base := e.cfg.CacheDir
	if base == "" {
		base = e.cfg.WorkDir
	}
	k := sha256.Sum256([]byte(s.Host + "\x00" + remote))
	dir := filepath.Join(base, "esxi", hex.EncodeToString(k[:12]))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", nil, fault.Wrap(fault.OutputNotWritable, dir, err, "cannot create the copy folder")
	}
	f, err := c.Fetch(ctx, remote, dir)
	if err != nil {
		return "", "", nil, err
	}
	if sink != nil {
		sink.Event(Event{Kind: EventInfo, Stage: StageFetch, Message: fmt.Sprintf("copied %d file(s) from %s over SSH (%d reused, %d resumed)", len(f.Files), s.Host, f.Reused, f.Resumed)})
	}
	return f.Head, fp, nil, nil
}
