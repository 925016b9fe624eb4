// Package guest defines what the engine needs from an offline guest: the
// inspection result, the narrow file system interface inspection and fixes
// work through, and the record of every change made. The libguestfs
// implementation lives in engine/internal/guestfs (cgo); tests of pure
// logic use the in-memory one in guesttest.
package guest

import (
	"context"
	"io/fs"
)

// FS is a mounted guest file system. Paths are absolute guest paths.
type FS interface {
	ReadFile(path string) ([]byte, error)
	WriteFile(path string, data []byte, mode fs.FileMode) error
	Remove(path string) error
	Exists(path string) bool
	IsFile(path string) bool
	IsDir(path string) bool
	// Glob expands a shell pattern in the guest.
	Glob(pattern string) ([]string, error)
	// Readlink returns a symlink's target, or an error if path is not one.
	Readlink(path string) (string, error)
	Symlink(target, path string) error
	Mkdir(path string, mode fs.FileMode) error
	// Command runs argv inside the guest (chroot), for package managers and
	// initramfs tools.
	Command(ctx context.Context, argv ...string) (string, error)
}

// Filesystem is a file system found on the disk.
type Filesystem struct {
	Device     string `json:"device"`
	Type       string `json:"type"`
	UUID       string `json:"uuid,omitempty"`
	Label      string `json:"label,omitempty"`
	PartUUID   string `json:"partuuid,omitempty"`
	Mountpoint string `json:"mountpoint,omitempty"`
}

// Disk is the block-level view inspection needs besides files.
type Disk interface {
	// Roots lists the devices holding an operating system.
	Roots() ([]string, error)
	// Filesystems lists every file system, LVM volumes included.
	Filesystems() ([]Filesystem, error)
	// OSInfo returns libguestfs' facts for a root.
	OSInfo(root string) (OSInfo, error)
	// MountRoot mounts a root and the file systems its fstab names.
	MountRoot(root string) error
	// MountAt mounts devices at mountpoints (mountpoint to device, as an
	// inspection found them), parents first. Only / must mount: a file
	// system on a disk that is not attached is skipped, as MountRoot does.
	MountAt(mounts map[string]string) error
	// PartitionTable returns "gpt", "msdos" or "" for the first disk.
	PartitionTable() (string, error)
	// PartitionType returns the GPT type GUID (or MBR id) of a partition.
	PartitionType(device string) (string, error)
	// LVs lists logical volumes.
	LVs() ([]string, error)
	// PartitionInfo locates a partition on its disk.
	PartitionInfo(device string) (Partition, error)
	// Sync flushes writes to the disk image.
	Sync() error
}

// Session is an open guest: its disk and, once a root is mounted, its
// file system.
type Session interface {
	Disk
	FS
	Close() error
}

// CallStat is the time an appliance spent in one kind of call.
type CallStat struct {
	Name    string  `json:"name"`
	Calls   int     `json:"calls"`
	Seconds float64 `json:"seconds"`
}

// Summer is a file system that hashes a file where it lies.
type Summer interface {
	SHA256(path string) (string, error)
}

// Profiler is a session that times its calls.
type Profiler interface {
	Profile() []CallStat
}

// OSInfo is what libguestfs' inspection reports for one root.
type OSInfo struct {
	Type        string // linux, windows
	Distro      string
	Major       int
	Minor       int
	ProductName string
	Arch        string
	Hostname    string
	// Mountpoints maps mount points to devices, from the guest's fstab.
	Mountpoints map[string]string
	// PackageFormat is deb, rpm...
	PackageFormat string
}

// Partition is a partition's place on its disk.
type Partition struct {
	Number int
	Start  int64 // bytes
	Size   int64 // bytes
	GUID   string
}

// RegValue is one registry value.
type RegValue struct {
	Type int64
	Data []byte
}

// RegKey is a registry key as read: its values and its subkeys' names.
type RegKey struct {
	Values map[string]RegValue
	Subs   []string
}

// RegEdit is one change to a hive: set a value (creating keys on the way)
// or delete a key.
type RegEdit struct {
	Key       string // backslash-separated, from the hive's root
	Value     string
	Type      int64
	Data      []byte
	DeleteKey bool
}

// Registry reads and edits Windows hives in a mounted guest, through hivex.
type Registry interface {
	// HiveKey reads a key; ok is false when it does not exist.
	HiveKey(hive, key string) (k RegKey, ok bool, err error)
	// HiveSubkeys reads every subkey of a key, with its values, in one
	// pass over the hive (a SYSTEM hive has hundreds of services).
	HiveSubkeys(hive, key string) (subs map[string]RegKey, ok bool, err error)
	// HiveEdit applies edits to a hive and commits them.
	HiveEdit(hive string, edits []RegEdit) error
	// WindowsInfo is what inspection found about a Windows root.
	WindowsInfo(root string) (WindowsRoot, error)
}

// WindowsRoot is libguestfs' view of a Windows installation.
type WindowsRoot struct {
	SystemRoot        string // /Windows
	CurrentControlSet string // ControlSet001
	SystemHive        string // /Windows/System32/config/SYSTEM
	SoftwareHive      string
}
