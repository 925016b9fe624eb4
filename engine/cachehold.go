package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
)

// What sources keep in the cache (downloads, copies, extracted OVAs) is
// shared by every conversion of the same source, in this process and in
// others (Terraform runs resources in parallel; workspaces may share a
// cache folder). Each entry <cache>/<kind>/<id> has, under <cache>/holds, a
// lock file, <kind>-<id>.lock, held while a source downloads into or reads
// the entry, and a folder of its users, <kind>-<id>.users: a file per
// output an apply made from it, and a "planned-" file per output a plan
// means to create from it (a new output, or the replacement of one), until
// its apply. They are kept apart from the entries, which hold only what
// was fetched. Destroying an output removes its own file from its
// entries' users, and deletes an entry nobody uses or plans to use any
// more. Lock files are never removed: one removed while another process
// waits on it would let two processes hold "the" lock.

// cacheHolds are the cache entries one source resolution holds.
type cacheHolds struct {
	ctx context.Context
	// owner is the output made or planned from the entries, recorded as
	// a user of them: by an apply, or (planned) by a plan that creates it.
	// "" records nothing: a plan of an output that exists.
	owner   string
	planned bool
	mu      sync.Mutex
	locks   map[string]*os.File
	dirs    []string
	// marks are the planned users this resolution recorded.
	marks []string
}

func newCacheHolds(ctx context.Context, owner string, planned bool) *cacheHolds {
	return &cacheHolds{ctx: ctx, owner: owner, planned: planned, locks: map[string]*os.File{}}
}

// hold locks dir's entry until release, waiting for whoever holds it, and
// records the owner as a user of it (planned, or made).
func (h *cacheHolds) hold(dir string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.locks[dir]; ok {
		return nil
	}
	f, err := lockEntry(h.ctx, dir)
	if err != nil {
		return err
	}
	h.locks[dir] = f
	h.dirs = append(h.dirs, dir)
	if h.owner == "" {
		return nil
	}
	_, users := holdFiles(dir)
	if err := os.MkdirAll(users, 0o755); err != nil {
		return fault.Wrap(fault.OutputNotWritable, users, err, "cannot record the cache entry's user")
	}
	name := userName(h.owner)
	if h.planned {
		name = plannedPrefix + name
	}
	if err := os.WriteFile(filepath.Join(users, name), []byte(h.owner+"\n"), 0o644); err != nil {
		return fault.Wrap(fault.OutputNotWritable, users, err, "cannot record the cache entry's user")
	}
	if h.planned {
		h.marks = append(h.marks, filepath.Join(users, name))
	} else {
		os.Remove(filepath.Join(users, plannedPrefix+name)) // planned, and now made
	}
	return nil
}

const plannedPrefix = "planned-"

// forget removes the planned users recorded, for a plan that failed: it
// creates nothing.
func (h *cacheHolds) forget() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, m := range h.marks {
		os.Remove(m)
		os.Remove(filepath.Dir(m)) // only when empty
	}
	h.marks = nil
}

// release unlocks every entry held; the entries are in dirs.
func (h *cacheHolds) release() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for dir, f := range h.locks {
		f.Close() // closing drops the flock
		delete(h.locks, dir)
	}
}

// lockEntry takes dir's lock, waiting while another holds it.
func lockEntry(ctx context.Context, dir string) (*os.File, error) {
	lock, _ := holdFiles(dir)
	if err := os.MkdirAll(filepath.Dir(lock), 0o755); err != nil {
		return nil, fault.Wrap(fault.OutputNotWritable, filepath.Dir(lock), err, "cannot create the cache's holds folder")
	}
	f, err := os.OpenFile(lock, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fault.Wrap(fault.OutputNotWritable, lock, err, "cannot open the cache entry's lock")
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fault.Wrap(fault.OutputNotWritable, lock, err, "cannot lock the cache entry")
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// holdFiles are the lock file and the users folder of the entry dir,
// <cache>/<kind>/<id>: <cache>/holds/<kind>-<id>.lock and .users.
func holdFiles(dir string) (lock, users string) {
	kind := filepath.Dir(dir)
	base := filepath.Join(filepath.Dir(kind), "holds", filepath.Base(kind)+"-"+filepath.Base(dir))
	return base + ".lock", base + ".users"
}

func userName(owner string) string {
	h := sha256.Sum256([]byte(owner))
	return hex.EncodeToString(h[:12])
}

// ownerOf names an output as a user of cache entries: every field of where
// it goes, so a file, a folder and a volume never share a name.
func ownerOf(o OutputSpec) string {
	return o.Path + "\x00" + o.Dir + "\x00" + o.Pool + "\x00" + o.Volume
}

// ReleaseSource removes a deleted output from the users of the cache
// entries its source was read from (its report lists them), and deletes
// those it leaves unused. An entry a plan means to create an output from
// stays: a replacement's create reads it moments after the old output is
// deleted. Only folders of the cache are touched, whatever the report says.
func (e *Engine) ReleaseSource(ctx context.Context, rep *Report) {
	if rep == nil || rep.Plan == nil || rep.Result == nil {
		return
	}
	for _, dir := range rep.Result.CacheEntries {
		// <cache>/<kind>/<entry>, nothing else.
		rel, err := filepath.Rel(e.cfg.CacheDir, dir)
		if err != nil || !filepath.IsLocal(rel) || strings.Count(filepath.ToSlash(rel), "/") != 1 {
			continue
		}
		releaseEntry(ctx, dir, ownerOf(rep.Plan.Request.Output))
	}
}

// releaseEntry removes owner from the users of dir, and deletes dir when
// that leaves it none. It waits for another process using the entry, as
// the entry's lock does; a failure leaves the entry, which is only a
// cache, in place.
func releaseEntry(ctx context.Context, dir, owner string) {
	f, err := lockEntry(ctx, dir)
	if err != nil {
		return
	}
	defer f.Close()
	_, users := holdFiles(dir)
	os.Remove(filepath.Join(users, userName(owner)))
	if left, err := os.ReadDir(users); err == nil && len(left) == 0 || errors.Is(err, fs.ErrNotExist) {
		os.RemoveAll(dir)
		os.Remove(users)
	}
}
