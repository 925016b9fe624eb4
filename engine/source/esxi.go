package source

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"

	"github.com/vmconv/terraform-provider-vmconv/engine/esxissh"
	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
)

// esxiSource is a VMDK on an ESXi host's datastore with its extents and
// snapshot parents, copied over SFTP with the host key pinned.
type esxiSource struct {
	s   *ESXi
	env Env
}

func (*esxiSource) Kind() string { return "esxi_ssh" }

// Locate stats the chain on the host (for plans) or copies it into the
// cache (fetchNow). The fingerprint covers every file's size and time.
func (x *esxiSource) Locate(ctx context.Context, fetchNow bool) (*Local, *Remote, error) {
	s := x.s
	remote, err := esxissh.RemotePath(s.Path)
	if err != nil {
		return nil, nil, err
	}
	c, err := esxissh.Dial(ctx, esxissh.Options{Host: s.Host, User: s.User, PrivateKey: s.PrivateKey, HostKey: s.HostKey})
	if err != nil {
		return nil, nil, err
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
			return nil, nil, err
		}
		fp, total := fingerprint(files)
		return nil, &Remote{Fingerprint: fp, Length: total, AcceptRanges: true}, nil
	}
	dir := x.env.entry("esxi", s.Host+"\x00"+remote)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, fault.Wrap(fault.OutputNotWritable, dir, err, "cannot create the copy folder")
	}
	// The copy walks the chain once and reports each file as it found it:
	// the fingerprint comes from the same walk.
	f, err := c.Fetch(ctx, remote, dir)
	if err != nil {
		return nil, nil, err
	}
	fp, _ := fingerprint(f.Remote)
	x.env.Log.Log("info", fmt.Sprintf("copied %d file(s) from %s over SSH (%d reused, %d resumed)", len(f.Files), s.Host, f.Reused, f.Resumed), nil)
	return &Local{Head: f.Head, Fingerprint: fp}, nil, nil
}

func (x *esxiSource) Describe(r *Remote) (string, string) {
	shown := x.s.Host + ":" + x.s.Path
	return shown, fmt.Sprintf("copy %s with its extents and snapshot parents%s over SFTP into the cache, host key pinned (resumed, and reused while unchanged)", shown, sizeNote(r))
}

func (*esxiSource) Protected() []string     { return nil }
func (*esxiSource) Relabel(err error) error { return err }
