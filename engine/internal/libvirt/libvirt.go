// Package libvirt is the engine's cgo leaf over libvirt.org/go/libvirt. It
// implements domain.Hypervisor; nothing else in the engine links libvirt.
package libvirt

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	lv "libvirt.org/go/libvirt"

	"github.com/vmconv/terraform-provider-vmconv/engine/domain"
)

// Conn is an open libvirt connection.
type Conn struct {
	c   *lv.Connect
	uri string
}

var _ domain.Hypervisor = (*Conn)(nil)

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

// Close closes the connection.
func (c *Conn) Close() error {
	_, err := c.c.Close()
	return err
}

func notFound(err error) bool {
	var le lv.Error
	return errors.As(err, &le) && le.Code == lv.ERR_NO_DOMAIN
}

func stateOf(d *lv.Domain) domain.State {
	st, _, err := d.GetState()
	if err != nil {
		return domain.StateOther
	}
	switch st {
	case lv.DOMAIN_RUNNING, lv.DOMAIN_BLOCKED:
		return domain.StateRunning
	case lv.DOMAIN_SHUTOFF, lv.DOMAIN_SHUTDOWN:
		return domain.StateShutOff
	case lv.DOMAIN_PAUSED, lv.DOMAIN_PMSUSPENDED:
		return domain.StatePaused
	case lv.DOMAIN_CRASHED:
		return domain.StateCrashed
	}
	return domain.StateOther
}

func info(d *lv.Domain) (domain.Info, error) {
	name, err := d.GetName()
	if err != nil {
		return domain.Info{}, err
	}
	uuid, err := d.GetUUIDString()
	if err != nil {
		return domain.Info{}, err
	}
	xml, err := d.GetXMLDesc(lv.DOMAIN_XML_INACTIVE)
	if err != nil {
		return domain.Info{}, err
	}
	return domain.Info{Name: name, UUID: uuid, State: stateOf(d), XML: xml}, nil
}

func (c *Conn) lookup(nameOrUUID string) (*lv.Domain, error) {
	if len(nameOrUUID) == 36 && strings.Count(nameOrUUID, "-") == 4 {
		if d, err := c.c.LookupDomainByUUIDString(nameOrUUID); err == nil {
			return d, nil
		}
	}
	return c.c.LookupDomainByName(nameOrUUID)
}

func (c *Conn) Lookup(nameOrUUID string) (domain.Info, bool, error) {
	d, err := c.lookup(nameOrUUID)
	if err != nil {
		if notFound(err) {
			return domain.Info{}, false, nil
		}
		return domain.Info{}, false, err
	}
	defer d.Free()
	i, err := info(d)
	return i, err == nil, err
}

func (c *Conn) Define(xml string) (domain.Info, error) {
	d, err := c.c.DomainDefineXML(xml)
	if err != nil {
		return domain.Info{}, err
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
	if stateOf(d) == domain.StateShutOff {
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
			if err := d.Destroy(); err != nil && stateOf(d) != domain.StateShutOff {
				return fmt.Errorf("force off after the shutdown timeout: %w", err)
			}
			return nil
		case <-t.C:
			if stateOf(d) == domain.StateShutOff {
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
	if stateOf(d) == domain.StateShutOff {
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
	if stateOf(d) != domain.StateShutOff {
		d.Destroy()
	}
	return d.UndefineFlags(lv.DOMAIN_UNDEFINE_NVRAM | lv.DOMAIN_UNDEFINE_MANAGED_SAVE | lv.DOMAIN_UNDEFINE_SNAPSHOTS_METADATA)
}

func (c *Conn) List() ([]domain.Info, error) {
	ds, err := c.c.ListAllDomains(0)
	if err != nil {
		return nil, err
	}
	var out []domain.Info
	for i := range ds {
		if in, err := info(&ds[i]); err == nil {
			out = append(out, in)
		}
		ds[i].Free()
	}
	return out, nil
}

func (c *Conn) Capabilities() (string, error) { return c.c.GetCapabilities() }
