package libvirt

import (
	"context"
	"fmt"
	"io"
	"time"

	lv "libvirt.org/go/libvirt"
	"libvirt.org/go/libvirtxml"

	"github.com/vmconv/terraform-provider-vmconv/engine/volume"
)

// CreateOverlayVolume makes a qcow2 volume in pool on top of the host file
// backing (of format): the host runs qemu-img, so nothing is copied.
func (c *Conn) CreateOverlayVolume(pool, name, backing, format string, capacity uint64) (volume.Info, error) {
	p, err := c.pool(pool)
	if err != nil {
		return volume.Info{}, err
	}
	defer p.Free()
	d := libvirtxml.StorageVolume{Name: name,
		Capacity:     &libvirtxml.StorageVolumeSize{Unit: "bytes", Value: capacity},
		Allocation:   &libvirtxml.StorageVolumeSize{Unit: "bytes", Value: 0},
		Target:       &libvirtxml.StorageVolumeTarget{Format: &libvirtxml.StorageVolumeTargetFormat{Type: "qcow2"}},
		BackingStore: &libvirtxml.StorageVolumeBackingStore{Path: backing, Format: &libvirtxml.StorageVolumeTargetFormat{Type: format}}}
	x, err := d.Marshal()
	if err != nil {
		return volume.Info{}, err
	}
	v, err := p.StorageVolCreateXML(x, 0)
	if err != nil {
		return volume.Info{}, err
	}
	defer v.Free()
	return volInfo(pool, v)
}

// VolumeByPath finds the pool volume whose file is path on the host, and
// the file it is backed by ("" for none). ok is false when no pool has it.
func (c *Conn) VolumeByPath(path string) (info volume.Info, backing string, ok bool, err error) {
	v, err := c.c.LookupStorageVolByPath(path)
	if isCode(err, lv.ERR_NO_STORAGE_VOL) {
		return volume.Info{}, "", false, nil
	}
	if err != nil {
		return volume.Info{}, "", false, err
	}
	defer v.Free()
	p, err := v.LookupPoolByVolume()
	if err != nil {
		return volume.Info{}, "", false, err
	}
	defer p.Free()
	pool, err := p.GetName()
	if err != nil {
		return volume.Info{}, "", false, err
	}
	info, err = volInfo(pool, v)
	if err != nil {
		return volume.Info{}, "", false, err
	}
	x, err := v.GetXMLDesc(0)
	if err != nil {
		return volume.Info{}, "", false, err
	}
	var d libvirtxml.StorageVolume
	if err := d.Unmarshal(x); err == nil && d.BackingStore != nil {
		backing = d.BackingStore.Path
	}
	return info, backing, true, nil
}

// OpenConsole copies the domain's first serial console to w until ctx
// ends or the domain goes away. It works the same over a remote
// connection: the bytes come through libvirt's stream, not a file.
func (c *Conn) OpenConsole(ctx context.Context, name string, w io.Writer) error {
	d, err := c.c.LookupDomainByName(name)
	if err != nil {
		return err
	}
	defer d.Free()
	s, err := c.c.NewStream(lv.STREAM_NONBLOCK)
	if err != nil {
		return err
	}
	defer s.Free()
	if err := d.OpenConsole("", s, lv.DOMAIN_CONSOLE_FORCE|lv.DOMAIN_CONSOLE_SAFE); err != nil {
		return fmt.Errorf("open the serial console: %w", err)
	}
	defer s.Abort()
	buf := make([]byte, 64<<10)
	for ctx.Err() == nil {
		n, err := s.Recv(buf)
		switch {
		case n > 0:
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
		case n == -2 && err == nil:
			// Nothing yet (a non-blocking stream, so that ctx can end it).
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		case err == io.EOF:
			return nil // the console closed: the domain stopped
		case err != nil:
			return err
		}
	}
	return nil
}
