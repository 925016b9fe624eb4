package vsphere

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/engine/vmdk"
)

// findVM finds a VM by name or inventory path, and its datacenter.
func (c *Client) findVM(ctx context.Context, datacenter, name string) (*object.Datacenter, *object.VirtualMachine, error) {
	var vm *object.VirtualMachine
	var dc *object.Datacenter
	if err := c.soap(ctx, func() error {
		f := find.NewFinder(c.vc, true)
		var err error
		if dc, err = f.DatacenterOrDefault(ctx, datacenter); err != nil {
			return err
		}
		f.SetDatacenter(dc)
		vm, err = f.VirtualMachine(ctx, name)
		return err
	}); err != nil {
		return nil, nil, fault.New(fault.RemoteNotFound, name, "vSphere has no VM %q in datacenter %q", name, datacenter).WithHint("Check datacenter and vm.")
	}
	return dc, vm, nil
}

// readRange reads n bytes at off of a datastore file through /folder, or
// with n < 0 the whole (small) file, checking that the server answered
// for exactly that range. Transient failures are tried again.
func (c *Client) readRange(ctx context.Context, dc *object.Datacenter, p object.DatastorePath, off, n int64) ([]byte, error) {
	ds, err := c.datastore(ctx, dc, p.Datastore)
	if err != nil {
		return nil, err
	}
	u := ds.NewURL(p.Path).String()
	var last error
	for attempt := range 4 {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(time.Duration(attempt) * 500 * time.Millisecond):
			}
		}
		b, retry, err := c.getRange(ctx, u, off, n)
		if err == nil {
			return b, nil
		}
		if last = err; !retry {
			break
		}
	}
	return nil, fault.Wrap(fault.FetchFailed, p.String(), last, "cannot read the datastore file")
}

func (c *Client) getRange(ctx context.Context, u string, off, n int64) (b []byte, retry bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, false, err
	}
	if n >= 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", off, off+n-1))
	}
	resp, err := c.vc.Client.Client.Do(req)
	if err != nil {
		return nil, ctx.Err() == nil, err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		if lerr := c.sm.Login(ctx, c.login); lerr != nil {
			return nil, false, fmt.Errorf("the session ended and logging in again failed")
		}
		c.Relogins++
		return nil, true, fmt.Errorf("HTTP %d", resp.StatusCode)
	case resp.StatusCode >= 500:
		return nil, true, fmt.Errorf("HTTP %d", resp.StatusCode)
	case n < 0 && resp.StatusCode == http.StatusOK:
		b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return b, true, err
	case n >= 0 && resp.StatusCode == http.StatusPartialContent:
		if want := fmt.Sprintf("bytes %d-%d/", off, off+n-1); !strings.HasPrefix(resp.Header.Get("Content-Range"), want) {
			return nil, false, fmt.Errorf("the server answered with range %q for %q", resp.Header.Get("Content-Range"), want)
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(resp.Body, b); err != nil {
			return nil, true, fmt.Errorf("short read of a range: %w", err)
		}
		return b, false, nil
	}
	return nil, false, fmt.Errorf("HTTP %d for a range request", resp.StatusCode)
}

func (c *Client) datastore(ctx context.Context, dc *object.Datacenter, name string) (*object.Datastore, error) {
	if ds, ok := c.datastores[name]; ok {
		return ds, nil
	}
	var ds *object.Datastore
	if err := c.soap(ctx, func() error {
		f := find.NewFinder(c.vc, true)
		f.SetDatacenter(dc)
		var err error
		ds, err = f.Datastore(ctx, name)
		return err
	}); err != nil {
		return nil, fault.New(fault.RemoteNotFound, name, "no datastore %q", name)
	}
	if c.datastores == nil {
		c.datastores = map[string]*object.Datastore{}
	}
	c.datastores[name] = ds
	return ds, nil
}

// singleFlatExtent is the file name of a descriptor's one flat extent.
func singleFlatExtent(desc []byte) (string, error) {
	d, err := vmdk.ParseDescriptor(desc)
	if err != nil {
		return "", err
	}
	if len(d.Extents) != 1 || d.Extents[0].Filename == "" || (d.Extents[0].Type != vmdk.ExtentFlat && d.Extents[0].Type != vmdk.ExtentVMFS) {
		return "", fmt.Errorf("the descriptor names %d extent(s); warm migration reads one flat extent", len(d.Extents))
	}
	if f := d.Extents[0].Filename; outsideFolder(f) {
		return "", fmt.Errorf("extent %q is outside the disk's folder", f)
	}
	return d.Extents[0].Filename, nil
}

// writeOrPunch writes b at off, or punches a hole where b is all zeros:
// an area freed on the source reads as zeros and stays sparse here.
func writeOrPunch(f *os.File, b []byte, off int64) error {
	if len(b) > 0 && b[0] == 0 && bytes.Equal(b, make([]byte, len(b))) {
		err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, int64(len(b)))
		if err == nil {
			return nil
		}
		// A file system without holes: write the zeros.
	}
	_, err := f.WriteAt(b, off)
	return err
}

// lockDir takes an exclusive lock on a staging folder, or fails at once
// when another process holds it.
func lockDir(dir string) (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil
}
