// Package libvirt is the engine's cgo leaf over libvirt.org/go/libvirt. It
// implements kvm.Hypervisor; nothing else in the engine links libvirt.
package libvirt

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	lv "libvirt.org/go/libvirt"

	"github.com/vmconv/terraform-provider-vmconv/engine/kvm"
)

// Conn is an open libvirt connection.
type Conn struct {
	c   *lv.Connect
	uri string
}

var _ kvm.Hypervisor = (*Conn)(nil)

// Open connects to uri.
func Open(uri string) (*Conn, error) {
	c, err := lv.NewConnect(uri)
	if err != nil {
		return nil, err
	}
	return &Conn{c: c, uri: uri}, nil
}

// URI is the connection's URI.
func (c *Conn) URI() string { return c.uri }

// Alive says whether the connection still works (a remote one drops when
// its ssh session ends).
func (c *Conn) Alive() (bool, error) { return c.c.IsAlive() }

// Close closes the connection.
func (c *Conn) Close() error {
	_, err := c.c.Close()
	return err
}

func notFound(err error) bool {
	var le lv.Error
	return errors.As(err, &le) && le.Code == lv.ERR_NO_DOMAIN
}

func stateOf(d *lv.Domain) kvm.State {
	st, _, err := d.GetState()
	if err != nil {
		return kvm.StateOther
	}
	switch st {
	case lv.DOMAIN_RUNNING, lv.DOMAIN_BLOCKED:
		return kvm.StateRunning
	case lv.DOMAIN_SHUTOFF, lv.DOMAIN_SHUTDOWN:
		return kvm.StateShutOff
	case lv.DOMAIN_PAUSED, lv.DOMAIN_PMSUSPENDED:
		return kvm.StatePaused
	case lv.DOMAIN_CRASHED:
		return kvm.StateCrashed
	}
	return kvm.StateOther
}

func info(d *lv.Domain) (kvm.Info, error) {
	name, err := d.GetName()
	if err != nil {
		return kvm.Info{}, err
	}
	uuid, err := d.GetUUIDString()
	if err != nil {
		return kvm.Info{}, err
	}
	xml, err := d.GetXMLDesc(lv.DOMAIN_XML_INACTIVE)
	if err != nil {
		return kvm.Info{}, err
	}
	return kvm.Info{Name: name, UUID: uuid, State: stateOf(d), XML: xml}, nil
}

func (c *Conn) lookup(nameOrUUID string) (*lv.Domain, error) {
	if len(nameOrUUID) == 36 && strings.Count(nameOrUUID, "-") == 4 {
		if d, err := c.c.LookupDomainByUUIDString(nameOrUUID); err == nil {
			return d, nil
		}
	}
	return c.c.LookupDomainByName(nameOrUUID)
}

func (c *Conn) Lookup(nameOrUUID string) (kvm.Info, bool, error) {
	d, err := c.lookup(nameOrUUID)
	if err != nil {
		if notFound(err) {
			return kvm.Info{}, false, nil
		}
		return kvm.Info{}, false, err
	}
	defer d.Free()
	i, err := info(d)
	return i, err == nil, err
}

func (c *Conn) Define(xml string) (kvm.Info, error) {
	d, err := c.c.DomainDefineXML(xml)
	if err != nil {
		return kvm.Info{}, err
	}
	defer d.Free()
	return info(d)
}

func (c *Conn) Start(name string) error {
	d, err := c.c.LookupDomainByName(name)
	if err != nil {
		return err
	}
	defer d.Free()
	return d.Create()
}

func (c *Conn) Shutdown(ctx context.Context, name string) error {
	d, err := c.c.LookupDomainByName(name)
	if err != nil {
		return err
	}
	defer d.Free()
	if stateOf(d) == kvm.StateShutOff {
		return nil
	}
	if err := d.Shutdown(); err != nil {
		return fmt.Errorf("ACPI shutdown: %w", err)
	}
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			// The guest ignored the power button: pull the plug.
			if err := d.Destroy(); err != nil && stateOf(d) != kvm.StateShutOff {
				return fmt.Errorf("force off after the shutdown timeout: %w", err)
			}
			return nil
		case <-t.C:
			if stateOf(d) == kvm.StateShutOff {
				return nil
			}
		}
	}
}

func (c *Conn) Destroy(name string) error {
	d, err := c.c.LookupDomainByName(name)
	if err != nil {
		if notFound(err) {
			return nil
		}
		return err
	}
	defer d.Free()
	if stateOf(d) == kvm.StateShutOff {
		return nil
	}
	return d.Destroy()
}

func (c *Conn) Undefine(name string) error {
	d, err := c.c.LookupDomainByName(name)
	if err != nil {
		if notFound(err) {
			return nil
		}
		return err
	}
	defer d.Free()
	if stateOf(d) != kvm.StateShutOff {
		d.Destroy()
	}
	return d.UndefineFlags(lv.DOMAIN_UNDEFINE_NVRAM | lv.DOMAIN_UNDEFINE_MANAGED_SAVE | lv.DOMAIN_UNDEFINE_SNAPSHOTS_METADATA)
}

func (c *Conn) List() ([]kvm.Info, error) {
	ds, err := c.c.ListAllDomains(0)
	if err != nil {
		return nil, err
	}
	var out []kvm.Info
	for i := range ds {
		if in, err := info(&ds[i]); err == nil {
			out = append(out, in)
		}
		ds[i].Free()
	}
	return out, nil
}

func (c *Conn) Capabilities() (string, error) { return c.c.GetCapabilities() }
