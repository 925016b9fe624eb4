// Package kvm is the domain lifecycle: a KVM domain for migrated disks is
// defined in libvirt on qcow2 overlays it owns (the converted images are
// never written), started, boot-tested through its serial console, changed
// in place and removed. It builds the libvirt XML, predicts at plan time
// whether QEMU will reach every disk, and drives libvirt through the narrow
// Hypervisor interface; the cgo binding lives in engine/internal/libvirt.
//
// The package never imports the engine: what it needs from it (the
// accelerator, overlays, the inspection appliance, scratch space, and what a
// disk's conversion report says) comes in through Deps.
package kvm

import (
	"context"
	"io"

	"github.com/vmconv/terraform-provider-vmconv/engine/volume"
)

// State is a domain's run state.
type State string

const (
	StateRunning  State = "running"
	StateShutOff  State = "shutoff"
	StatePaused   State = "paused"
	StateCrashed  State = "crashed"
	StateOther    State = "other"
	StateNotFound State = "not-found"
)

// Info describes a defined domain.
type Info struct {
	Name  string
	UUID  string
	State State
	XML   string
}

// Hypervisor is what the engine needs from libvirt.
type Hypervisor interface {
	// Lookup finds a domain by name or UUID; ok is false if there is none.
	Lookup(nameOrUUID string) (info Info, ok bool, err error)
	Define(xml string) (Info, error)
	Start(name string) error
	// Shutdown asks the guest to power off (ACPI) and waits for it, then
	// forces it off when ctx ends.
	Shutdown(ctx context.Context, name string) error
	Destroy(name string) error
	// Undefine removes the definition, and the NVRAM of UEFI domains.
	Undefine(name string) error
	// List lists every defined domain.
	List() ([]Info, error)
	// Capabilities is the host's capabilities XML (virsh capabilities),
	// which names the user QEMU runs as.
	Capabilities() (string, error)
	Close() error

	// The pools of the host, for domains whose disks are volumes.
	volume.Storage
	// CreateOverlayVolume makes a qcow2 volume in pool backed by the
	// host's file backing (of format), of capacity bytes.
	CreateOverlayVolume(pool, name, backing, format string, capacity uint64) (volume.Info, error)
	// VolumeByPath finds the volume whose file on the host is path, and
	// the file it is backed by; ok is false when no pool has it.
	VolumeByPath(path string) (info volume.Info, backing string, ok bool, err error)
	// OpenConsole copies the domain's serial console to w until ctx ends
	// or the domain stops.
	OpenConsole(ctx context.Context, name string, w io.Writer) error
}
