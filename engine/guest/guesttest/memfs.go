// Package guesttest provides an in-memory guest file system for unit tests
// of inspection and fixes. It is a fake for pure logic; the real boundary
// (libguestfs) has its own tests against real guests.
package guesttest

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"

	"github.com/vmconv/terraform-provider-vmconv/engine/guest"
)

// MemFS is a map of guest paths to contents, with symlinks and a scripted
// command runner.
type MemFS struct {
	Files    map[string][]byte
	Links    map[string]string
	Dirs     map[string]bool
	Commands []string
	// Run answers commands; the default records them and succeeds.
	Run func(argv []string) (string, error)
}

var _ guest.FS = (*MemFS)(nil)

// New returns a MemFS holding files.
func New(files map[string]string) *MemFS {
	m := &MemFS{Files: map[string][]byte{}, Links: map[string]string{}, Dirs: map[string]bool{"/": true}}
	for p, c := range files {
		m.Files[p] = []byte(c)
		for d := path.Dir(p); d != "/"; d = path.Dir(d) {
			m.Dirs[d] = true
		}
	}
	return m
}

func notExist(p string) error { return &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist} }

func (m *MemFS) ReadFile(p string) ([]byte, error) {
	if b, ok := m.Files[p]; ok {
		return append([]byte(nil), b...), nil
	}
	return nil, notExist(p)
}

func (m *MemFS) WriteFile(p string, b []byte, _ fs.FileMode) error {
	m.Files[p] = append([]byte(nil), b...)
	for d := path.Dir(p); d != "/"; d = path.Dir(d) {
		m.Dirs[d] = true
	}
	return nil
}

func (m *MemFS) Remove(p string) error {
	delete(m.Files, p)
	delete(m.Links, p)
	return nil
}

func (m *MemFS) Exists(p string) bool {
	_, f := m.Files[p]
	_, l := m.Links[p]
	return f || l || m.Dirs[p]
}

func (m *MemFS) IsFile(p string) bool { _, ok := m.Files[p]; return ok }
func (m *MemFS) IsDir(p string) bool  { return m.Dirs[p] }

func (m *MemFS) Glob(pattern string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	add := func(p string) {
		if ok, _ := path.Match(pattern, p); ok && !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	for p := range m.Files {
		add(p)
	}
	for p := range m.Dirs {
		add(p)
	}
	for p := range m.Links {
		add(p)
	}
	sort.Strings(out)
	return out, nil
}

func (m *MemFS) Readlink(p string) (string, error) {
	if t, ok := m.Links[p]; ok {
		return t, nil
	}
	return "", fmt.Errorf("%s is not a symlink", p)
}

func (m *MemFS) Symlink(target, p string) error { m.Links[p] = target; return nil }

func (m *MemFS) Mkdir(p string, _ fs.FileMode) error { m.Dirs[p] = true; return nil }

func (m *MemFS) Command(_ context.Context, argv ...string) (string, error) {
	m.Commands = append(m.Commands, strings.Join(argv, " "))
	if m.Run != nil {
		return m.Run(argv)
	}
	return "", nil
}
