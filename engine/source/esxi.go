package source

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"

	"github.com/vmconv/terraform-provider-vmconv/engine/esxissh"
	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/engine/guest"
	"github.com/vmconv/terraform-provider-vmconv/engine/progress"
	"github.com/vmconv/terraform-provider-vmconv/engine/vmx"
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
	c, err := esxissh.Dial(ctx, esxissh.Options{Host: s.Host, User: s.User, PrivateKey: s.PrivateKey, HostKey: s.HostKey,
		Progress: func(remote string, r progress.Report) {
			x.env.Log.Log("progress", "copying "+remote+" over SSH: "+r.String(), r.Fields())
		}})
	if err != nil {
		return nil, nil, err
	}
	defer c.Close()
	fingerprint := func(files []esxissh.FileInfo) (string, int64) { return filesFingerprint(s.Host+"\x00"+remote, files) }
	if x.env.WholeVM {
		return x.locateVM(ctx, c, remote, fetchNow)
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
	if err := x.env.use(dir); err != nil {
		return nil, nil, err
	}
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

// filesFingerprint identifies files on the host by path, size and time.
func filesFingerprint(key string, files []esxissh.FileInfo) (string, int64) {
	h := sha256.New()
	var total int64
	fmt.Fprintf(h, "%s\x00", key)
	for _, f := range files {
		fmt.Fprintf(h, "%s|%d|%d\x00", f.Path, f.Size, f.ModTime.UnixNano())
		total += f.Size
	}
	return "esxi:v1:" + hex.EncodeToString(h.Sum(nil)), total
}

// locateVM is the .vmx at remote and every disk it names: planned from
// what the host reports of each file, or copied (fetchNow), each disk's
// chain into its own folder.
func (x *esxiSource) locateVM(ctx context.Context, c *esxissh.Client, remote string, fetchNow bool) (*Local, *Remote, error) {
	var vm *vmx.VM
	var chains [][]esxissh.FileInfo
	var heads []string
	if fetchNow {
		dir := x.env.entry("esxi-vm", x.s.Host+"\x00"+remote)
		if err := x.env.use(dir); err != nil {
			return nil, nil, err
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, nil, fault.Wrap(fault.OutputNotWritable, dir, err, "cannot create the copy folder")
		}
		f, err := c.FetchVM(ctx, remote, dir)
		if err != nil {
			return nil, nil, err
		}
		vm = f.VM
		for _, d := range f.Disks {
			chains = append(chains, d.Remote)
			heads = append(heads, d.Head)
		}
		x.env.Log.Log("info", fmt.Sprintf("copied %d disk(s) of %s from %s over SSH", len(f.Disks), x.s.Path, x.s.Host), nil)
	} else {
		v, files, err := c.StatVM(ctx, remote)
		if err != nil {
			return nil, nil, err
		}
		vm, chains = v, files
	}
	l := &Local{Hardware: vmxHardware(vm), Note: fmt.Sprintf("%d disk(s) of the VM", len(vm.Disks))}
	// The VM is its disks' chains: the .vmx itself is rewritten by ESXi
	// at power operations, and a change to the hardware it describes
	// alone is an update, not a new source.
	whole := sha256.New()
	for i, d := range vm.Disks {
		fp, total := filesFingerprint(fmt.Sprintf("%s\x00%s\x00%d", x.s.Host, remote, i), chains[i])
		fmt.Fprintln(whole, fp)
		disk := Disk{Device: d.Device, Slot: guest.DiskSlot{Bus: d.Bus, Controller: d.Controller, Unit: d.Unit}, Fingerprint: fp}
		if len(chains[i]) > 0 {
			disk.Shown = x.s.Host + ":" + chains[i][0].Path
		}
		if fetchNow {
			disk.Head = heads[i]
		} else {
			disk.Remote = &Remote{Fingerprint: fp, Length: total, AcceptRanges: true}
		}
		l.Disks = append(l.Disks, disk)
	}
	l.Fingerprint = "esxi:v1:" + hex.EncodeToString(whole.Sum(nil))
	return l, nil, nil
}

func (x *esxiSource) Describe(r *Remote) (string, string) {
	shown := x.s.Host + ":" + x.s.Path
	if x.env.WholeVM {
		return shown, fmt.Sprintf("read the .vmx %s and copy every disk it names, each with its extents and snapshot parents, over SFTP into the cache, host key pinned (resumed, and reused while unchanged)", shown)
	}
	return shown, fmt.Sprintf("copy %s with its extents and snapshot parents%s over SFTP into the cache, host key pinned (resumed, and reused while unchanged)", shown, sizeNote(r))
}

func (*esxiSource) Protected() []string     { return nil }
func (*esxiSource) Relabel(err error) error { return err }
