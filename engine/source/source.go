// Package source is the FETCH stage's inputs: every kind of source disk
// (a local path, a VMware VM folder's .vmx, an OVA, a URL, a vSphere VM,
// an ESXi datastore over SSH)
// behind one interface, chosen in one place (Select), as virt-v2v's input
// modules share one module type and CDI's data sources one interface.
//
// A source either is local already (a path, an OVA extracted earlier, a
// download in the cache) or can be made local (Locate with fetch), and
// until then it says what its remote end reports, which is what a plan of
// a source that is not fetched yet is made from. Everything a source keeps
// lives under the engine's cache folder, one entry per source identity.
package source

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"

	"github.com/vmconv/terraform-provider-vmconv/engine/ovf"
)

// Source is one kind of source disk.
type Source interface {
	// Kind is the source's kind in plans and reports: path, vmx, ova,
	// url, vsphere or esxi_ssh.
	Kind() string
	// Locate makes the source local when it is already in the cache, or
	// when fetch allows copying it there. Otherwise it returns what the
	// remote end reports, without fetching anything.
	Locate(ctx context.Context, fetch bool) (*Local, *Remote, error)
	// Describe names the source for a plan, without its secrets, and says
	// what FETCH does with it. r is what Locate learnt of a source not
	// fetched yet, or nil.
	Describe(r *Remote) (shown, fetch string)
	// Protected lists files an output must never overwrite besides the
	// chain's own (an OVA archive).
	Protected() []string
	// Relabel rewrites an error about the source's cache files so that it
	// names what the user wrote (an OVA member, a URL without secrets).
	Relabel(err error) error
}

// Local is a source made local.
type Local struct {
	// Head is the disk's newest file; its chain is resolved from it.
	// Empty when the source is a VM of several disks and names none of
	// them (a .vmx): it converts only as a whole VM.
	Head string
	// Fingerprint identifies the source; empty means the chain's files
	// are fingerprinted.
	Fingerprint string
	// OVF is an OVA's descriptor: the VM's CPUs, memory, firmware, NICs.
	OVF *ovf.OVF
	// Note says which part of the source the disk is, for the plan.
	Note string
	// Disks are every disk of a source that is a whole VM (a .vmx, an
	// OVA), in the order the VM attaches them. Nil for a single disk.
	Disks []Disk
	// Hardware is a whole VM's shape; nil when the source does not say.
	Hardware *Hardware
	// Warm is set when the disks are a warm migration's staging images,
	// reached by a cutover; WarmPreview, for every warm migration, is
	// what its next sync will copy.
	Warm        *WarmCutover
	WarmPreview *WarmPreview
}

// Remote is what a source not made local reports about itself.
type Remote struct {
	Fingerprint  string
	Length       int64
	AcceptRanges bool
}

// Env is what sources need from the engine.
type Env struct {
	// CacheDir holds what sources fetch, one entry per source identity.
	CacheDir string
	// Log receives the transports' messages (URLs redacted, no secrets).
	Log Logger
	// WholeVM says the source is converted as a whole VM, every disk of
	// it, not one disk.
	WholeVM bool
	// Hold, when set, is called before a source reads or writes a cache
	// entry: the engine locks the entry against a concurrent download or
	// clean-up of it (in this process or another) and, at apply, records
	// the output as one of the entry's users.
	Hold func(dir string) error
}

// Logger receives messages at a level (debug, info, warn).
type Logger interface {
	Log(level, msg string, fields map[string]any)
}

// Select returns the source a normalized Spec names.
func Select(s Spec, env Env) Source {
	if env.Log == nil {
		env.Log = nopLog{}
	}
	switch {
	case len(s.Disks) > 0:
		return &disksSource{specs: s.Disks, env: env}
	case s.VMX != "":
		return vmxSource{path: s.VMX}
	case s.OVA != "" || s.OVAURL != nil:
		return &ovaSource{spec: s, env: env}
	case s.URL != nil:
		return &urlSource{u: s.URL, env: env}
	case s.VSphere != nil:
		return &vsphereSource{s: s.VSphere, env: env}
	case s.ESXi != nil:
		return &esxiSource{s: s.ESXi, env: env}
	}
	return pathSource{path: s.Path}
}

// entry is the cache folder for one source of a kind, named by a hash of
// what identifies it.
func (env Env) entry(kind, key string) string {
	h := sha256.Sum256([]byte(key))
	return filepath.Join(env.CacheDir, kind, hex.EncodeToString(h[:12]))
}

// use holds a cache entry (Env.Hold) before the source touches it.
func (env Env) use(dir string) error {
	if env.Hold == nil {
		return nil
	}
	return env.Hold(dir)
}

type nopLog struct{}

func (nopLog) Log(string, string, map[string]any) {}

// pathSource is a local disk: nothing to fetch.
type pathSource struct{ path string }

func (pathSource) Kind() string { return "path" }
func (p pathSource) Locate(context.Context, bool) (*Local, *Remote, error) {
	return &Local{Head: p.path}, nil, nil
}
func (p pathSource) Describe(*Remote) (string, string) { return p.path, "" }
func (pathSource) Protected() []string                 { return nil }
func (pathSource) Relabel(err error) error             { return err }
