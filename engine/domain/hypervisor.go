// Package domain builds KVM domains for migrated guests: their libvirt XML,
// their disks (a domain-owned overlay on each converted image) and the
// narrow hypervisor interface the engine drives. The libvirt binding lives
// in engine/internal/libvirt (cgo).
package domain

import "context"

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
}
