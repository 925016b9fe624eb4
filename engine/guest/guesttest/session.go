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
	// Detections counts MountRoot's OS detections; MountAtErr fails MountAt.
	Detections int
	MountAtErr error
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

// MountRoot detects the OS as libguestfs does: the root must be among
// RootList and have an OSInfo.
func (s *Session) MountRoot(root string) error {
	found := false
	for _, r := range s.RootList {
		found = found || r == root
	}
	if _, ok := s.OS[root]; !ok || !found {
		return fmt.Errorf("no operating system on %s", root)
	}
	s.Detections++
	s.Mounted = root
	return nil
}

// MountAt records the device mounted on /.
func (s *Session) MountAt(mounts map[string]string) error {
	if mounts["/"] == "" {
		return fmt.Errorf("nothing to mount on /")
	}
	if s.MountAtErr != nil {
		return s.MountAtErr
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
