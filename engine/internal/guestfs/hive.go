package guestfs

import (
	"fmt"
	"strings"

	lg "libguestfs.org/guestfs"

	"github.com/vmconv/terraform-provider-vmconv/engine/guest"
)

// WindowsInfo reports a Windows root's system folder and hives.
func (s *Session) WindowsInfo(root string) (w guest.WindowsRoot, err error) {
	err = s.call("windows info", func() error {
		var e error
		if w.SystemRoot, e = s.g.Inspect_get_windows_systemroot(root); e != nil {
			return e
		}
		w.CurrentControlSet, _ = s.g.Inspect_get_windows_current_control_set(root)
		w.SystemHive, _ = s.g.Inspect_get_windows_system_hive(root)
		w.SoftwareHive, _ = s.g.Inspect_get_windows_software_hive(root)
		return nil
	})
	return w, err
}

// hiveWalk finds a key below the root; create adds missing keys.
func (s *Session) hiveWalk(key string, create bool) (int64, bool, error) {
	node, err := s.g.Hivex_root()
	if err != nil {
		return 0, false, err
	}
	for _, part := range strings.Split(key, `\`) {
		if part == "" {
			continue
		}
		child, err := s.g.Hivex_node_get_child(node, part)
		if err != nil {
			return 0, false, err
		}
		if child == 0 {
			if !create {
				return 0, false, nil
			}
			if child, err = s.g.Hivex_node_add_child(node, part); err != nil {
				return 0, false, err
			}
		}
		node = child
	}
	return node, true, nil
}

// readNode reads a node's values and its children's names and handles;
// the hive must be open.
func (s *Session) readNode(node int64) (guest.RegKey, []int64, error) {
	k := guest.RegKey{Values: map[string]guest.RegValue{}}
	vals, err := s.g.Hivex_node_values(node)
	if err != nil {
		return k, nil, err
	}
	for _, v := range *vals {
		name, _ := s.g.Hivex_value_key(v.Hivex_value_h)
		t, _ := s.g.Hivex_value_type(v.Hivex_value_h)
		data, _ := s.g.Hivex_value_value(v.Hivex_value_h)
		k.Values[name] = guest.RegValue{Type: t, Data: data}
	}
	kids, err := s.g.Hivex_node_children(node)
	if err != nil {
		return k, nil, err
	}
	var handles []int64
	for _, c := range *kids {
		n, _ := s.g.Hivex_node_name(c.Hivex_node_h)
		k.Subs = append(k.Subs, n)
		handles = append(handles, c.Hivex_node_h)
	}
	return k, handles, nil
}

// readHive opens a hive read-only, finds key and hands its node to f.
func (s *Session) readHive(hive, key string, f func(node int64) error) (ok bool, err error) {
	err = s.call("read hive", func() error {
		if err := s.g.Hivex_open(hive, &lg.OptargsHivex_open{Write_is_set: true, Write: false}); err != nil {
			return err
		}
		defer s.g.Hivex_close()
		node, found, err := s.hiveWalk(key, false)
		if err != nil || !found {
			return err
		}
		ok = true
		return f(node)
	})
	return ok, err
}

func (s *Session) HiveKey(hive, key string) (k guest.RegKey, ok bool, err error) {
	ok, err = s.readHive(hive, key, func(node int64) (err error) {
		k, _, err = s.readNode(node)
		return err
	})
	return k, ok, err
}

func (s *Session) HiveSubkeys(hive, key string) (subs map[string]guest.RegKey, ok bool, err error) {
	ok, err = s.readHive(hive, key, func(node int64) error {
		parent, kids, err := s.readNode(node)
		if err != nil {
			return err
		}
		subs = map[string]guest.RegKey{}
		for i, h := range kids {
			if subs[parent.Subs[i]], _, err = s.readNode(h); err != nil {
				return err
			}
		}
		return nil
	})
	return subs, ok, err
}

func (s *Session) HiveEdit(hive string, edits []guest.RegEdit) error {
	return s.call("hive edit", func() error {
		if err := s.g.Hivex_open(hive, &lg.OptargsHivex_open{Write_is_set: true, Write: true}); err != nil {
			return err
		}
		defer s.g.Hivex_close()
		for _, e := range edits {
			if e.DeleteKey {
				node, found, err := s.hiveWalk(e.Key, false)
				if err != nil {
					return err
				}
				if found {
					if err := s.g.Hivex_node_delete_child(node); err != nil {
						return fmt.Errorf("delete %s: %w", e.Key, err)
					}
				}
				continue
			}
			node, _, err := s.hiveWalk(e.Key, true)
			if err != nil {
				return fmt.Errorf("%s: %w", e.Key, err)
			}
			if e.Value == "" && e.Data == nil {
				continue // the key alone
			}
			if err := s.g.Hivex_node_set_value(node, e.Value, e.Type, e.Data); err != nil {
				return fmt.Errorf("%s\\%s: %w", e.Key, e.Value, err)
			}
		}
		return s.g.Hivex_commit(nil)
	})
}

// HasWindowsRegistry reports whether a file system holds a Windows SYSTEM
// hive, for telling a Windows whose registry inspection could not read
// from a data disk.
func (s *Session) HasWindowsRegistry(device string) bool {
	found := false
	s.call("has windows registry", func() error {
		if err := s.g.Mount_ro(device, "/"); err != nil {
			return nil
		}
		defer s.g.Umount_all()
		if p, err := s.g.Case_sensitive_path("/windows/system32/config/system"); err == nil {
			found, _ = s.g.Is_file(p, nil)
		}
		return nil
	})
	return found
}
