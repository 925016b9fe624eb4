package fix

import (
	"context"
	"io/fs"
	"path"

	"github.com/vmconv/terraform-provider-vmconv/engine/guest"
)

// dryFS lets a dry run see its own writes without touching the guest:
// writes and removals are kept in memory, commands are not run.
type dryFS struct {
	guest.FS
	files   map[string][]byte
	removed map[string]bool
}

func newDryFS(f guest.FS) *dryFS {
	return &dryFS{FS: f, files: map[string][]byte{}, removed: map[string]bool{}}
}

func (d *dryFS) ReadFile(p string) ([]byte, error) {
	if b, ok := d.files[p]; ok {
		return b, nil
	}
	if d.removed[p] {
		return nil, &fs.PathError{Op: "read", Path: p, Err: fs.ErrNotExist}
	}
	return d.FS.ReadFile(p)
}

// SHA256 hashes what the dry run sees: its own write, or the guest's file.
func (d *dryFS) SHA256(p string) (string, error) {
	if _, written := d.files[p]; !written && !d.removed[p] {
		if s, ok := d.FS.(guest.Summer); ok {
			return s.SHA256(p)
		}
	}
	b, err := d.ReadFile(p)
	if err != nil {
		return "", err
	}
	return guest.SHA256(b), nil
}

func (d *dryFS) WriteFile(p string, b []byte, _ fs.FileMode) error {
	d.files[p] = append([]byte(nil), b...)
	delete(d.removed, p)
	return nil
}

func (d *dryFS) Remove(p string) error {
	delete(d.files, p)
	d.removed[p] = true
	return nil
}

func (d *dryFS) Exists(p string) bool {
	if _, ok := d.files[p]; ok {
		return true
	}
	return !d.removed[p] && d.FS.Exists(p)
}

func (d *dryFS) IsFile(p string) bool {
	if _, ok := d.files[p]; ok {
		return true
	}
	return !d.removed[p] && d.FS.IsFile(p)
}

func (d *dryFS) Glob(pattern string) ([]string, error) {
	base, err := d.FS.Glob(pattern)
	var out []string
	for _, p := range base {
		if !d.removed[p] {
			out = append(out, p)
		}
	}
	for p := range d.files {
		if ok, _ := path.Match(pattern, p); ok && !contains(out, p) {
			out = append(out, p)
		}
	}
	return out, err
}

func (d *dryFS) Symlink(string, string) error    { return nil }
func (d *dryFS) Mkdir(string, fs.FileMode) error { return nil }

// Command runs only tools that read (listing an initramfs); anything that
// could change the guest is recorded by the caller and not run.
func (d *dryFS) Command(ctx context.Context, argv ...string) (string, error) {
	if len(argv) > 0 && readOnlyTools[argv[0]] {
		return d.FS.Command(ctx, argv...)
	}
	return "(dry run: not run)", nil
}

var readOnlyTools = map[string]bool{"lsinitramfs": true, "lsinitrd": true}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}
