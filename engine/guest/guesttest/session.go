package guesttest

import (
	"fmt"

	"github.com/vmconv/terraform-provider-vmconv/engine/guest"
)

// Session is a fake guest.Session: a MemFS with a scripted disk.
type Session struct {
	*MemFS
	RootList  []string
	FSList    []guest.Filesystem
	OS        map[string]guest.OSInfo
	PartTable string
	PartTypes map[string]string
	LVList    []string
	Mounted   string
}

var _ guest.Session = (*Session)(nil)

func (s *Session) Roots() ([]string, error)                      { return s.RootList, nil }
func (s *Session) Filesystems() ([]guest.Filesystem, error)      { return s.FSList, nil }
func (s *Session) PartitionTable() (string, error)               { return s.PartTable, nil }
func (s *Session) LVs() ([]string, error)                        { return s.LVList, nil }
func (s *Session) Sync() error                                   { return nil }
func (s *Session) Close() error                                  { return nil }
func (s *Session) PartitionInfo(string) (guest.Partition, error) { return guest.Partition{}, nil }

func (s *Session) OSInfo(root string) (guest.OSInfo, error) {
	o, ok := s.OS[root]
	if !ok {
		return o, fmt.Errorf("no OS on %s", root)
	}
	return o, nil
}

func (s *Session) MountRoot(root string) error { s.Mounted = root; return nil }

// MountAt records the device mounted on /, as MountRoot records the root.
func (s *Session) MountAt(mounts map[string]string) error {
	if mounts["/"] == "" {
		return fmt.Errorf("nothing to mount on /")
	}
	s.Mounted = mounts["/"]
	return nil
}

func (s *Session) PartitionType(dev string) (string, error) {
	if t, ok := s.PartTypes[dev]; ok {
		return t, nil
	}
	return "83", nil
}
