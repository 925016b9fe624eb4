package source

import (
	"fmt"
	"net/url"
	"path/filepath"
	"time"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/engine/fetch"
)

// Spec names the source disk: exactly one kind is set. It is plain data,
// serialized into plans and reports without its secrets.
type Spec struct {
	// Path is the newest file of a local disk (a snapshot chain's head).
	Path string `json:"path,omitempty"`
	// Format declares the format instead of detecting it (for raw disks
	// without a partition table); it must not contradict the content.
	Format string `json:"format,omitempty"`
	// AllowParentCIDMismatch accepts snapshots whose parentCID does not
	// match the parent's CID.
	AllowParentCIDMismatch bool `json:"allow_parent_cid_mismatch,omitempty"`
	// AllowOlderSnapshot converts a layer that has a newer snapshot beside
	// it, knowingly without that snapshot's writes.
	AllowOlderSnapshot bool `json:"allow_older_snapshot,omitempty"`
	// VMX is a VMware VM's configuration file: every disk it names, in
	// controller order, and the VM's hardware.
	VMX string `json:"vmx,omitempty"`
	// OVA is a local OVA archive to take the disk from, instead of Path.
	OVA string `json:"ova,omitempty"`
	// OVADisk is which of the OVF's disks (in its order), from 0.
	OVADisk int `json:"ova_disk,omitempty"`
	// OVAURL is an OVA on an HTTP(S) server, downloaded (resumably) into
	// the cache before it is extracted like a local one.
	OVAURL *URL `json:"ova_url,omitempty"`
	// URL is a disk file on an HTTP(S) server, instead of Path.
	URL *URL `json:"url,omitempty"`
	// VSphere is a VM's disk in vCenter or ESXi, instead of Path.
	VSphere *VSphere `json:"vsphere,omitempty"`
	// ESXi is a disk on an ESXi host's datastore, copied over SSH.
	ESXi *ESXi `json:"esxi_ssh,omitempty"`
	// Disks is a VM given disk by disk, in the order it attaches them:
	// each a single-disk source.
	Disks []Spec `json:"disks,omitempty"`
}

// URL is an HTTP(S) source. Href is only ever shown redacted; header
// values never leave the process (they are not serialized).
type URL struct {
	Href    string            `json:"-"`
	SHA256  string            `json:"sha256,omitempty"`
	Headers map[string]string `json:"-"`
	// Shown is Href without user info or query, for plans and reports.
	Shown string `json:"href"`
}

// VSphere is a VM's disk in vCenter or ESXi. The credentials are not
// serialized.
type VSphere struct {
	URL        string `json:"url"`
	Datacenter string `json:"datacenter,omitempty"`
	VM         string `json:"vm"`
	Disk       int    `json:"disk"`
	// Snapshot takes a snapshot for a consistent read and removes it.
	Snapshot   bool   `json:"snapshot"`
	Thumbprint string `json:"thumbprint,omitempty"`
	Insecure   bool   `json:"insecure,omitempty"`
	Username   string `json:"-"`
	Password   string `json:"-"`
	// Warm migrates the whole VM while it runs: syncs copy it into
	// staging images (Engine.WarmSync), and the cutover converts them.
	Warm *Warm `json:"warm,omitempty"`
}

// Warm is a warm migration's settings.
type Warm struct {
	// Cutover shuts the VM down, syncs the last changes and converts the
	// staging images; without it, apply only syncs.
	Cutover bool `json:"cutover"`
	// ShutdownTimeout is how long the guest has to shut down at cutover
	// before the VM is powered off; zero means five minutes.
	ShutdownTimeout time.Duration `json:"shutdown_timeout,omitempty"`
}

// ESXi is a VMDK on an ESXi host, read over SSH (SFTP). The private key is
// not serialized.
type ESXi struct {
	Host       string `json:"host"`
	User       string `json:"user"`
	PrivateKey string `json:"-"`
	HostKey    string `json:"host_key"`
	// Path is "[datastore] folder/file.vmdk" or an absolute path.
	Path string `json:"path"`
}

// Normalize checks that exactly one kind is set and puts the spec in its
// canonical form (absolute paths, redacted URLs for display).
func (s Spec) Normalize() (Spec, error) {
	kinds := 0
	for _, set := range []bool{s.Path != "", s.VMX != "", s.OVA != "", s.URL != nil, s.VSphere != nil, s.ESXi != nil, s.OVAURL != nil, len(s.Disks) > 0} {
		if set {
			kinds++
		}
	}
	switch {
	case kinds == 0:
		return s, fault.New(fault.InvalidRequest, "", "no source is set").WithHint("Set source.path, source.vmx, source.ova, source.url, source.vsphere, source.esxi_ssh or source.disks.")
	case kinds > 1:
		return s, fault.New(fault.InvalidRequest, "", "more than one source kind is set").WithHint("Set exactly one source kind.")
	case s.URL != nil || s.OVAURL != nil:
		u := s.URL
		if u == nil {
			u = s.OVAURL
		}
		pu, err := url.Parse(u.Href)
		if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			return s, fault.New(fault.InvalidRequest, fetch.Redact(u.Href), "the source URL is not an http or https URL")
		}
		c := *u
		c.Shown = fetch.Redact(u.Href)
		if s.URL != nil {
			s.URL = &c
		} else {
			s.OVAURL = &c
		}
	case len(s.Disks) > 0:
		return s.normalizeList()
	case s.VMX != "":
		abs, err := filepath.Abs(s.VMX)
		if err != nil {
			return s, fault.Wrap(fault.InvalidRequest, s.VMX, err, "invalid .vmx path")
		}
		s.VMX = abs
	case s.OVA != "":
		abs, err := filepath.Abs(s.OVA)
		if err != nil {
			return s, fault.Wrap(fault.InvalidRequest, s.OVA, err, "invalid OVA path")
		}
		s.OVA = abs
	}
	return s, nil
}

// normalizeList normalizes each listed disk, which must be one disk.
func (s Spec) normalizeList() (Spec, error) {
	if len(s.Disks) > MaxListedDisks {
		return s, fault.New(fault.InvalidRequest, "", "source.disks lists %d disks; a VM has at most %d", len(s.Disks), MaxListedDisks)
	}
	out := make([]Spec, len(s.Disks))
	for i, d := range s.Disks {
		if d.VMX != "" || len(d.Disks) > 0 {
			return s, fault.New(fault.InvalidRequest, d.VMX, "source.disks[%d] names a whole VM; list single disks", i).
				WithHint("Use source.vmx for a VM folder, or list each disk's file.").WithFact("Listed disk", fmt.Sprintf("source.disks[%d]", i))
		}
		// The list's own settings apply to every disk.
		d.AllowOlderSnapshot = d.AllowOlderSnapshot || s.AllowOlderSnapshot
		d.AllowParentCIDMismatch = d.AllowParentCIDMismatch || s.AllowParentCIDMismatch
		n, err := d.Normalize()
		if err != nil {
			if fe, ok := fault.As(err); ok {
				return s, fe.WithFact("Listed disk", fmt.Sprintf("source.disks[%d]", i))
			}
			return s, err
		}
		if n.Path != "" {
			abs, err := filepath.Abs(n.Path)
			if err != nil {
				return s, fault.Wrap(fault.InvalidRequest, n.Path, err, "invalid path in source.disks[%d]", i)
			}
			n.Path = abs
		}
		out[i] = n
	}
	s.Disks = out
	return s, nil
}
