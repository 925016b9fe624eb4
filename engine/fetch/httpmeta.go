package fetch

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
)

// contentRange parses "bytes start-end/total" (total may be "*").
func contentRange(h string) (start, total int64, ok bool) {
	h = strings.TrimPrefix(h, "bytes ")
	slash := strings.IndexByte(h, '/')
	dash := strings.IndexByte(h, '-')
	if slash < 0 || dash < 0 || dash > slash {
		return 0, 0, false
	}
	start, err := strconv.ParseInt(h[:dash], 10, 64)
	if err != nil {
		return 0, 0, false
	}
	if t := h[slash+1:]; t != "*" {
		if total, err = strconv.ParseInt(t, 10, 64); err != nil {
			return 0, 0, false
		}
	}
	return start, total, true
}

func hashFile(p string) (string, int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	return hex.EncodeToString(h.Sum(nil)), n, err
}

func readMeta(p string) (partMeta, bool) {
	m, err := readPartMeta(p)
	return m, err == nil
}

func readPartMeta(p string) (partMeta, error) {
	var m partMeta
	b, err := os.ReadFile(p)
	if err != nil {
		return m, err
	}
	return m, json.Unmarshal(b, &m)
}

func writeJSON(p string, v any) error {
	b, _ := json.Marshal(v)
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		os.Remove(tmp) // a full disk leaves it empty or cut short
		return err
	}
	return os.Rename(tmp, p)
}

// Complete reports a finished download at dest without reading it all:
// its recorded length matches the file. HTTP verifies the content again
// before reusing it.
func Complete(dest string) (size int64, sha string, ok bool) {
	m, ok := readMeta(dest + ".json")
	if !ok || m.SHA256 == "" {
		return 0, "", false
	}
	fi, err := os.Stat(dest)
	if err != nil || (m.Length > 0 && fi.Size() != m.Length) {
		return 0, "", false
	}
	return fi.Size(), m.SHA256, true
}

// Head is what a HEAD request says about a remote object.
type Head struct {
	Length       int64
	ETag         string
	LastModified string
	AcceptRanges bool
}

// HTTPHead asks the server about rawURL without downloading it.
func HTTPHead(ctx context.Context, rawURL string, o HTTPOptions) (*Head, error) {
	red := Redact(rawURL)
	c := retryablehttp.NewClient()
	c.RetryMax, c.RetryWaitMin, c.RetryWaitMax, c.Logger = 2, 200*time.Millisecond, 2*time.Second, nil
	if o.HTTPClient != nil {
		c.HTTPClient = o.HTTPClient
	}
	c.ErrorHandler = retryablehttp.PassthroughErrorHandler
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodHead, rawURL, nil)
	if err != nil {
		return nil, fault.Wrap(fault.InvalidRequest, red, err, "invalid URL")
	}
	for k, v := range o.Headers {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fault.Wrap(fault.FetchFailed, red, err, "the server did not answer").WithHint("Check source.url.href and the network.")
	}
	resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		return nil, fault.New(fault.RemoteNotFound, red, "the server has no such file (HTTP %d)", resp.StatusCode).WithHint("Check source.url.href.")
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return nil, fault.New(fault.AuthFailed, red, "the server refused access (HTTP %d)", resp.StatusCode).WithHint("Check the credentials in source.url.headers.")
	case resp.StatusCode >= 300:
		return nil, fault.New(fault.FetchFailed, red, "the server answered HTTP %d", resp.StatusCode)
	}
	return &Head{Length: resp.ContentLength, ETag: resp.Header.Get("ETag"), LastModified: resp.Header.Get("Last-Modified"),
		AcceptRanges: strings.Contains(resp.Header.Get("Accept-Ranges"), "bytes")}, nil
}

// Meta is what is recorded about a finished download.
type Meta struct {
	Length       int64
	ETag         string
	LastModified string
	SHA256       string
}

// ReadMeta reads the record of a finished download at dest.
func ReadMeta(dest string) (Meta, bool) {
	m, ok := readMeta(dest + ".json")
	return Meta{Length: m.Length, ETag: m.ETag, LastModified: m.LastModified, SHA256: m.SHA256}, ok
}

// sameRemote asks the server whether the object is still the one recorded.
func sameRemote(ctx context.Context, rawURL string, o HTTPOptions, m partMeta) bool {
	h, err := HTTPHead(ctx, rawURL, o)
	if err != nil || h.Length != m.Length {
		return false
	}
	if m.ETag != "" || h.ETag != "" {
		return h.ETag == m.ETag
	}
	return h.LastModified != "" && h.LastModified == m.LastModified
}

// Partial is how much of a download to dest is already in its part file,
// for a later HTTP to resume.
func Partial(dest string) int64 {
	if m, err := readPartMeta(dest + ".json.part"); err != nil || m.Length <= 0 {
		return 0 // no length recorded: the download starts over
	}
	fi, err := os.Stat(dest + ".part")
	if err != nil {
		return 0
	}
	return fi.Size()
}
