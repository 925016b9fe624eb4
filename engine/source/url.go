package source

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/engine/fetch"
)

// urlSource is a disk file on an HTTP(S) server, downloaded resumably into
// the cache (engine/fetch) and verified before use.
type urlSource struct {
	u   *URL
	env Env
}

func (*urlSource) Kind() string { return "url" }

// dest is where the download lives: keyed by the full URL and the expected
// checksum, so a new URL or checksum downloads anew.
func (s *urlSource) dest() string { return downloadPath(s.env, s.u) }

func downloadPath(env Env, u *URL) string {
	name := "disk"
	if pu, err := url.Parse(u.Href); err == nil && path.Base(pu.Path) != "/" && path.Base(pu.Path) != "." {
		name = path.Base(pu.Path)
	}
	return filepath.Join(env.entry("url", u.Href+"\x00"+strings.ToLower(u.SHA256)), name)
}

// urlFingerprint identifies the remote object from its metadata: the
// strongest validator there is, a checksum the user pinned, else the
// server's ETag, else Last-Modified, with the length. It never contains the
// URL's secrets.
func urlFingerprint(u *URL, etag, lastModified string, length int64) string {
	id := strings.ToLower(u.SHA256)
	switch {
	case id != "":
	case etag != "":
		id = fmt.Sprintf("etag:%s|%d", etag, length)
	default:
		id = fmt.Sprintf("modified:%s|%d", lastModified, length)
	}
	h := sha256.Sum256([]byte(u.Href + "\x00" + id))
	return "url:v1:" + hex.EncodeToString(h[:])
}

func (s *urlSource) Locate(ctx context.Context, fetchNow bool) (*Local, *Remote, error) {
	dest, fp, r, err := download(ctx, s.env, s.u, fetchNow)
	if err != nil || r != nil {
		return nil, r, err
	}
	return &Local{Head: dest, Fingerprint: fp}, nil, nil
}

// download makes a URL local when it may (fetch, or already downloaded),
// and otherwise says what the server says about it.
func download(ctx context.Context, env Env, u *URL, fetchNow bool) (dest, fp string, r *Remote, err error) {
	dest = downloadPath(env, u)
	if err := env.use(filepath.Dir(dest)); err != nil {
		return "", "", nil, err
	}
	o := fetch.HTTPOptions{Headers: u.Headers, SHA256: u.SHA256, Logger: env.Log}
	if _, _, ok := fetch.Complete(dest); ok && !fetchNow {
		m, _ := fetch.ReadMeta(dest)
		return dest, urlFingerprint(u, m.ETag, m.LastModified, m.Length), nil, nil
	}
	if !fetchNow {
		h, err := fetch.HTTPHead(ctx, u.Href, o)
		if err != nil {
			return "", "", nil, err
		}
		// What the server announces must fit in the cache; the download
		// checks again, and bounds a body without a length as it comes.
		if h.Length > 0 {
			if err := fetch.CheckRoom(filepath.Dir(dest), fetch.Redact(u.Href), h.Length-fetch.Partial(dest)); err != nil {
				return "", "", nil, err
			}
		}
		return "", "", &Remote{Fingerprint: urlFingerprint(u, h.ETag, h.LastModified, h.Length), Length: h.Length, AcceptRanges: h.AcceptRanges}, nil
	}
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return "", "", nil, fault.Wrap(fault.OutputNotWritable, filepath.Dir(dest), err, "cannot create the download folder")
	}
	if _, err := fetch.HTTP(ctx, u.Href, dest, o); err != nil {
		return "", "", nil, err
	}
	m, _ := fetch.ReadMeta(dest)
	return dest, urlFingerprint(u, m.ETag, m.LastModified, m.Length), nil, nil
}

func (s *urlSource) Describe(r *Remote) (string, string) {
	return s.u.Shown, fmt.Sprintf("download%s from %s into the cache (%s; verified before use)", sizeNote(r), s.u.Shown, resumeNote(r))
}

func sizeNote(r *Remote) string {
	if r != nil && r.Length > 0 {
		return fmt.Sprintf(" (%d bytes)", r.Length)
	}
	return ""
}

func resumeNote(r *Remote) string {
	if r != nil && !r.AcceptRanges {
		return "the server does not advertise ranges: an interrupted download restarts"
	}
	return "resumable"
}

func (*urlSource) Protected() []string { return nil }

func (s *urlSource) Relabel(err error) error {
	return labels{downloadRule(s.env, s.u)}.relabel(err)
}

// downloadRule maps the download's cache file, and only it: its .part and
// .json files are the cache's own and keep their names.
func downloadRule(env Env, u *URL) *labelRule {
	dest, shown := downloadPath(env, u), shownURL(u)
	re := regexp.MustCompile(regexp.QuoteMeta(dest) + `($|[^\w.~+-])`)
	return &labelRule{re, func(m string) string { return shown + m[len(dest):] }}
}

func shownURL(u *URL) string {
	if u.Shown != "" {
		return u.Shown
	}
	return fetch.Redact(u.Href)
}
