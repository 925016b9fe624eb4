package libvirt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	lv "libvirt.org/go/libvirt"
	"libvirt.org/go/libvirtxml"

	"github.com/vmconv/terraform-provider-vmconv/engine/volume"
)

var _ volume.Storage = (*Conn)(nil)

// ErrNoPool is returned by Pool for a pool the host does not have.
var ErrNoPool = errors.New("no such storage pool")

func isCode(err error, code lv.ErrorNumber) bool {
	var le lv.Error
	return errors.As(err, &le) && le.Code == code
}

func (c *Conn) pool(name string) (*lv.StoragePool, error) {
	p, err := c.c.LookupStoragePoolByName(name)
	if isCode(err, lv.ERR_NO_STORAGE_POOL) {
		return nil, fmt.Errorf("%w %q", ErrNoPool, name)
	}
	return p, err
}

// Pool looks up an active pool.
func (c *Conn) Pool(name string) (volume.PoolInfo, error) {
	p, err := c.pool(name)
	if err != nil {
		return volume.PoolInfo{}, err
	}
	defer p.Free()
	if on, err := p.IsActive(); err != nil || !on {
		return volume.PoolInfo{}, fmt.Errorf("storage pool %q is not active (virsh pool-start %s)", name, name)
	}
	x, err := p.GetXMLDesc(0)
	if err != nil {
		return volume.PoolInfo{}, err
	}
	var d libvirtxml.StoragePool
	if err := d.Unmarshal(x); err != nil {
		return volume.PoolInfo{}, err
	}
	in, err := p.GetInfo()
	if err != nil {
		return volume.PoolInfo{}, err
	}
	pi := volume.PoolInfo{Name: name, Type: d.Type, Available: in.Available}
	if d.Target != nil {
		pi.Path = d.Target.Path
	}
	return pi, nil
}

func (c *Conn) vol(pool, name string) (*lv.StoragePool, *lv.StorageVol, error) {
	p, err := c.pool(pool)
	if err != nil {
		return nil, nil, err
	}
	v, err := p.LookupStorageVolByName(name)
	if err != nil {
		p.Free()
		return nil, nil, err
	}
	return p, v, nil
}

func volInfo(pool string, v *lv.StorageVol) (volume.Info, error) {
	name, err := v.GetName()
	if err != nil {
		return volume.Info{}, err
	}
	in, err := v.GetInfo()
	if err != nil {
		return volume.Info{}, err
	}
	phys, err := v.GetInfoFlags(lv.STORAGE_VOL_GET_PHYSICAL)
	if err != nil {
		return volume.Info{}, err
	}
	x, err := v.GetXMLDesc(0)
	if err != nil {
		return volume.Info{}, err
	}
	var d libvirtxml.StorageVolume
	if err := d.Unmarshal(x); err != nil {
		return volume.Info{}, err
	}
	out := volume.Info{Pool: pool, Name: name, Capacity: in.Capacity, Allocation: in.Allocation, Physical: phys.Allocation}
	if d.Target != nil {
		out.Path = d.Target.Path
		if d.Target.Format != nil {
			out.Format = d.Target.Format.Type
		}
	}
	return out, nil
}

func (c *Conn) Volume(pool, name string) (volume.Info, bool, error) {
	p, v, err := c.vol(pool, name)
	if isCode(err, lv.ERR_NO_STORAGE_VOL) {
		return volume.Info{}, false, nil
	}
	if err != nil {
		return volume.Info{}, false, err
	}
	defer p.Free()
	defer v.Free()
	in, err := volInfo(pool, v)
	return in, err == nil, err
}

func (c *Conn) Volumes(pool string) ([]volume.Info, error) {
	p, err := c.pool(pool)
	if err != nil {
		return nil, err
	}
	defer p.Free()
	vs, err := p.ListAllStorageVolumes(0)
	if err != nil {
		return nil, err
	}
	var out []volume.Info
	for i := range vs {
		if in, err := volInfo(pool, &vs[i]); err == nil {
			out = append(out, in)
		}
		vs[i].Free()
	}
	return out, nil
}

// volXML asks for a volume with nothing allocated up front: libvirt copies
// a clone sparsely only when the new volume's allocation is below its
// capacity.
func volXML(name, format string, capacity uint64, withCapacity bool) (string, error) {
	d := libvirtxml.StorageVolume{Name: name, Target: &libvirtxml.StorageVolumeTarget{Format: &libvirtxml.StorageVolumeTargetFormat{Type: format}},
		Allocation: &libvirtxml.StorageVolumeSize{Unit: "bytes", Value: 0}}
	if withCapacity {
		d.Capacity = &libvirtxml.StorageVolumeSize{Unit: "bytes", Value: capacity}
	}
	return d.Marshal()
}

func (c *Conn) Create(pool, name, format string, capacity uint64) error {
	p, err := c.pool(pool)
	if err != nil {
		return err
	}
	defer p.Free()
	x, err := volXML(name, format, capacity, true)
	if err != nil {
		return err
	}
	v, err := p.StorageVolCreateXML(x, 0)
	if err != nil {
		return err
	}
	return v.Free()
}

// Upload sends src through a stream, data as bytes and holes as holes
// (VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM), so a sparse image stays sparse
// on the host and its holes never cross the network.
func (c *Conn) Upload(ctx context.Context, pool, name string, src volume.Source, progress func(int64)) error {
	ext, err := src.Extents()
	if err != nil {
		return err
	}
	p, v, err := c.vol(pool, name)
	if err != nil {
		return err
	}
	defer p.Free()
	defer v.Free()
	s, err := c.c.NewStream(0)
	if err != nil {
		return err
	}
	defer s.Free()
	if err := v.Upload(s, 0, uint64(src.Size()), lv.STORAGE_VOL_UPLOAD_SPARSE_STREAM); err != nil {
		return err
	}
	fail := func(err error) error {
		s.Abort()
		return err
	}
	buf := make([]byte, 4<<20)
	var done int64
	for _, e := range ext {
		if !e.Data {
			if err := s.SendHole(e.Length, 0); err != nil {
				return fail(err)
			}
			continue
		}
		for off := e.Offset; off < e.Offset+e.Length; {
			if err := ctx.Err(); err != nil {
				return fail(err)
			}
			n := int(min(int64(len(buf)), e.Offset+e.Length-off))
			got, err := src.ReadAt(buf[:n], off)
			if got < n {
				if err == nil {
					err = fmt.Errorf("short read at %d", off)
				}
				return fail(err)
			}
			for b := buf[:n]; len(b) > 0; {
				w, err := s.Send(b)
				if err != nil {
					return fail(err)
				}
				b = b[w:]
			}
			off += int64(n)
			done += int64(n)
			if progress != nil {
				progress(done)
			}
		}
	}
	return s.Finish()
}

// Clone has the host copy from into a new volume to. A reflink is asked
// for first: where the pool's file system has them, publishing is instant.
func (c *Conn) Clone(pool, from, to, format string) error {
	p, v, err := c.vol(pool, from)
	if err != nil {
		return err
	}
	defer p.Free()
	defer v.Free()
	x, err := volXML(to, format, 0, false)
	if err != nil {
		return err
	}
	nv, err := p.StorageVolCreateXMLFrom(x, v, lv.STORAGE_VOL_CREATE_REFLINK)
	if err != nil {
		nv, err = p.StorageVolCreateXMLFrom(x, v, 0)
	}
	if err != nil {
		return err
	}
	return nv.Free()
}

func (c *Conn) Delete(pool, name string) error {
	p, v, err := c.vol(pool, name)
	if isCode(err, lv.ERR_NO_STORAGE_VOL) {
		return nil
	}
	if err != nil {
		return err
	}
	defer p.Free()
	defer v.Free()
	if err := v.Delete(0); err != nil && !isCode(err, lv.ERR_NO_STORAGE_VOL) {
		return err // gone meanwhile (a parallel destroy) is what was asked
	}
	return nil
}

func (c *Conn) Download(ctx context.Context, pool, name string, off, n int64) ([]byte, error) {
	p, v, err := c.vol(pool, name)
	if err != nil {
		return nil, err
	}
	defer p.Free()
	defer v.Free()
	s, err := c.c.NewStream(0)
	if err != nil {
		return nil, err
	}
	defer s.Free()
	if err := v.Download(s, uint64(off), uint64(n), 0); err != nil {
		return nil, err
	}
	out := make([]byte, 0, n)
	buf := make([]byte, 256<<10)
	for {
		if err := ctx.Err(); err != nil {
			s.Abort()
			return nil, err
		}
		got, err := s.Recv(buf)
		if got == 0 && (err == nil || errors.Is(err, io.EOF)) {
			break // the binding reports the stream's end as io.EOF
		}
		if err != nil {
			s.Abort()
			return nil, err
		}
		out = append(out, buf[:got]...)
	}
	return out, s.Finish()
}

func (c *Conn) Refresh(ctx context.Context, pool string) error {
	p, err := c.pool(pool)
	if err != nil {
		return err
	}
	defer p.Free()
	return whenIdle(ctx, pool, 250*time.Millisecond, func() error { return p.Refresh(0) })
}

// whenIdle runs f until the pool is not busy: libvirt refuses to rescan a
// pool while a clone runs in it ("asynchronous jobs running"), which is
// another publish's, of this run or another.
func whenIdle(ctx context.Context, pool string, wait time.Duration, f func() error) error {
	for ; ; wait = min(2*wait, 5*time.Second) {
		err := f()
		if err == nil || !strings.Contains(err.Error(), "asynchronous jobs running") {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (waiting for other publishes into pool %s to finish)", err, pool)
		case <-time.After(wait):
		}
	}
}
