// Package fetch is the FETCH stage's transports: it brings a remote source
// to a local file that the rest of the pipeline treats like any other.
//
// Downloads are resumable. Bytes land in <dest>.part, with what is known
// about the remote object (length, ETag, Last-Modified) in <dest>.part.json;
// an interrupted download continues from the end of the .part file with a
// Range request guarded by If-Range, so a changed object restarts instead
// of being spliced. Only a complete, verified download is renamed to dest.
package fetch

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/engine/progress"
)

// Logger receives the transport's messages. URLs in them are redacted
// (no query, no user info): either may carry a token.
type Logger interface {
	Log(level, msg string, fields map[string]any)
}

// HTTPOptions tunes an HTTP(S) download.
type HTTPOptions struct {
	// Headers are sent with every request. Their values may be secrets
	// and are never logged.
	Headers map[string]string
	// SHA256, when set, must match the whole download.
	SHA256 string
	// Attempts bounds how many times a download is (re)started or
	// resumed after a dropped connection. Default 8.
	Attempts int
	// RetryMax bounds retries of one request on 5xx and connection
	// errors (go-retryablehttp). Default 4.
	RetryMax     int
	RetryWaitMin time.Duration
	RetryWaitMax time.Duration
	Logger       Logger
	HTTPClient   *http.Client
	// Parallel splits a download into this many concurrent Range
	// requests when the server supports ranges and the object is large
	// enough (at least 4 MiB a part). Default 1.
	Parallel int
	// Revalidate reuses a finished download only if the server still
	// reports the same length and ETag or Last-Modified: for sources that
	// change in place, like a datastore file after a snapshot is removed.
	Revalidate bool
}

// Result says how a download went.
type Result struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// Reused is set when a previous complete download was verified and
	// kept; Resumed when this one continued a partial download.
	Reused   bool `json:"reused"`
	Resumed  bool `json:"resumed"`
	Restarts int  `json:"restarts"`
	Requests int  `json:"requests"`
}

type partMeta struct {
	URL          string `json:"url"` // redacted
	Length       int64  `json:"length"`
	ETag         string `json:"etag,omitempty"`
	LastModified string `json:"last_modified,omitempty"`
	SHA256       string `json:"sha256,omitempty"` // set once complete
	// Parts are the byte ranges of a parallel download, each with how far
	// it got: a resumed download continues each one.
	Parts []partRange `json:"parts,omitempty"`
}

type partRange struct {
	Start int64 `json:"start"`
	End   int64 `json:"end"` // exclusive
	Done  int64 `json:"done"`
}

// Redact strips what may be secret from a URL for logs and reports.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable URL)"
	}
	u.User = nil
	if u.RawQuery != "" {
		u.RawQuery = "REDACTED"
	}
	u.Fragment = ""
	return u.String()
}

// HTTP downloads rawURL to dest.
func HTTP(ctx context.Context, rawURL, dest string, o HTTPOptions) (*Result, error) {
	if o.Attempts <= 0 {
		o.Attempts = 8
	}
	if o.RetryMax <= 0 {
		o.RetryMax = 4
	}
	if o.RetryWaitMin <= 0 {
		o.RetryWaitMin = 200 * time.Millisecond
	}
	if o.RetryWaitMax <= 0 {
		o.RetryWaitMax = 5 * time.Second
	}
	red := Redact(rawURL)
	log := func(level, msg string, f map[string]any) {
		if o.Logger != nil {
			if f == nil {
				f = map[string]any{}
			}
			f["url"] = red
			o.Logger.Log(level, msg, f)
		}
	}
	res := &Result{Path: dest}
	metaPath, part := dest+".json", dest+".part"

	// A complete earlier download is kept if it still verifies.
	if m, ok := readMeta(metaPath); ok && m.SHA256 != "" && (!o.Revalidate || sameRemote(ctx, rawURL, o, m)) {
		if sum, size, err := hashFile(dest); err == nil && sum == m.SHA256 && (o.SHA256 == "" || strings.EqualFold(o.SHA256, sum)) {
			res.Reused, res.Size, res.SHA256 = true, size, sum
			log("info", "reusing the verified download", map[string]any{"size": size})
			return res, nil
		}
	}

	c := retryablehttp.NewClient()
	c.RetryMax, c.RetryWaitMin, c.RetryWaitMax = o.RetryMax, o.RetryWaitMin, o.RetryWaitMax
	c.Logger = nil
	if o.HTTPClient != nil {
		c.HTTPClient = o.HTTPClient
	}
	c.RequestLogHook = func(_ retryablehttp.Logger, r *http.Request, attempt int) {
		res.Requests++
		if attempt > 0 {
			log("warn", "retrying the request", map[string]any{"attempt": attempt, "range": r.Header.Get("Range")})
		}
	}
	c.ErrorHandler = retryablehttp.PassthroughErrorHandler

	meta, _ := readPartMeta(metaPath + ".part")
	if _, err := os.Stat(part); err != nil {
		meta = partMeta{}
	}
	parallel := len(meta.Parts) > 0
	if !parallel && o.Parallel > 1 && meta.Length == 0 {
		if h, err := HTTPHead(ctx, rawURL, HTTPOptions{Headers: o.Headers, HTTPClient: o.HTTPClient}); err == nil &&
			h.AcceptRanges && h.Length >= int64(o.Parallel)*(4<<20) && (h.ETag != "" || h.LastModified != "") {
			meta = partMeta{URL: red, Length: h.Length, ETag: h.ETag, LastModified: h.LastModified}
			step := (h.Length + int64(o.Parallel) - 1) / int64(o.Parallel)
			for a := int64(0); a < h.Length; a += step {
				meta.Parts = append(meta.Parts, partRange{Start: a, End: min(a+step, h.Length)})
			}
			parallel = true
		}
	}
	var lastErr error
	for attempt := 0; parallel && attempt < o.Attempts; attempt++ {
		err := fetchParts(ctx, c, rawURL, part, &meta, o, res, metaPath+".part", log)
		writeJSON(metaPath+".part", meta)
		if err == nil {
			break
		}
		var perm *permanentError
		if errors.As(err, &perm) {
			if perm.discard {
				discardPart(dest)
			}
			return nil, perm.err
		}
		lastErr = err
		if attempt == o.Attempts-1 {
			return nil, gaveUp(red, lastErr, o.Attempts, meta)
		}
		res.Resumed = true
		log("warn", "a part of the download stopped early; resuming it", map[string]any{"error": err.Error()})
	}
	for attempt := 0; !parallel && attempt < o.Attempts; attempt++ {
		if ctx.Err() != nil {
			if meta.Length <= 0 {
				discardPart(dest)
				return nil, fault.Wrap(fault.Cancelled, red, ctx.Err(), "the download was interrupted").
					WithHint("Run terraform apply again: the download starts over (the server gives no length, so the part downloaded was removed).")
			}
			return nil, fault.Wrap(fault.Cancelled, red, ctx.Err(), "the download was interrupted").
				WithHint("Run terraform apply again: the download resumes where it stopped.")
		}
		have := int64(0)
		if fi, err := os.Stat(part); err == nil && meta.Length > 0 {
			have = fi.Size()
		}
		done, err := fetchOnce(ctx, c, rawURL, part, metaPath+".part", have, &meta, o, res, log)
		writeJSON(metaPath+".part", meta)
		if err == nil && done {
			break
		}
		var perm *permanentError
		if errors.As(err, &perm) {
			if perm.discard {
				discardPart(dest)
			}
			return nil, perm.err
		}
		lastErr = err
		log("warn", "the download stopped early; resuming", map[string]any{"error": err.Error(), "have": have})
		if attempt == o.Attempts-1 {
			if meta.Length <= 0 {
				discardPart(dest)
			}
			return nil, gaveUp(red, lastErr, o.Attempts, meta)
		}
	}

	sum, size, err := hashFile(part)
	if err != nil {
		return nil, fault.Wrap(fault.FetchFailed, red, err, "cannot read the download back")
	}
	if meta.Length > 0 && size != meta.Length {
		os.Remove(part)
		os.Remove(metaPath + ".part")
		return nil, fault.New(fault.FetchFailed, red, "the server sent %d bytes but announced %d", size, meta.Length).
			WithHint("The server's Content-Length or Content-Range is wrong; the partial file was discarded.")
	}
	if o.SHA256 != "" && !strings.EqualFold(o.SHA256, sum) {
		os.Remove(part)
		os.Remove(metaPath + ".part")
		return nil, fault.New(fault.ChecksumMismatch, red, "the download's SHA-256 is %s, not the expected %s", sum, strings.ToLower(o.SHA256)).
			WithHint("The file on the server is not the one the sha256 names: check the URL and the checksum. Nothing was kept.")
	}
	if err := os.Rename(part, dest); err != nil {
		return nil, fault.Wrap(fault.OutputNotWritable, dest, err, "cannot move the finished download into place")
	}
	meta.SHA256 = sum
	writeJSON(metaPath, meta)
	os.Remove(metaPath + ".part")
	res.Size, res.SHA256 = size, sum
	log("info", "download complete", map[string]any{"size": size, "resumed": res.Resumed, "restarts": res.Restarts, "requests": res.Requests})
	return res, nil
}

// permanentError ends a download without another attempt; discard says
// the part downloaded is of no use to a later one and is removed.
type permanentError struct {
	err     error
	discard bool
}

func (p *permanentError) Error() string { return p.err.Error() }

// gaveUp is the fault for a download that kept stopping early. Whether
// another apply continues it depends on whether the server gave a length.
func gaveUp(red string, err error, attempts int, meta partMeta) error {
	fe := fault.Wrap(fault.FetchFailed, red, err, "the download did not complete after %d attempts", attempts)
	if meta.Length <= 0 {
		return fe.WithHint("Check the server and the network, then run terraform apply again: the download starts over (the server gives no length, so the part downloaded was removed).")
	}
	return fe.WithHint("Check the server and the network, then run terraform apply again: the download resumes where it stopped.")
}

// discardPart removes a partial download and its record.
func discardPart(dest string) {
	os.Remove(dest + ".part")
	os.Remove(dest + ".json.part")
}

// fetchOnce sends one (ranged) GET and appends its body to part. It
// returns done when part holds the whole object.
func fetchOnce(ctx context.Context, c *retryablehttp.Client, rawURL, part, metaFile string, have int64, meta *partMeta, o HTTPOptions, res *Result,
	log func(string, string, map[string]any)) (bool, error) {
	red := Redact(rawURL)
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return false, &permanentError{err: fault.Wrap(fault.InvalidRequest, red, err, "invalid URL")}
	}
	for k, v := range o.Headers {
		req.Header.Set(k, v)
	}
	if have > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", have))
		// If the object changed, the server sends all of it (200) rather
		// than a range of the new object spliced onto the old.
		if meta.ETag != "" {
			req.Header.Set("If-Range", meta.ETag)
		} else if meta.LastModified != "" {
			req.Header.Set("If-Range", meta.LastModified)
		}
	}
	resp, err := c.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()

	var f *os.File
	from := have // where this body starts in part
	switch {
	case resp.StatusCode == http.StatusPartialContent && have > 0:
		start, total, ok := contentRange(resp.Header.Get("Content-Range"))
		if !ok || start != have {
			return false, fmt.Errorf("the server answered a range from %d with %q", have, resp.Header.Get("Content-Range"))
		}
		if total > 0 {
			meta.Length = total
		}
		if f, err = os.OpenFile(part, os.O_WRONLY|os.O_APPEND, 0o644); err != nil {
			return false, &permanentError{err: fault.Wrap(fault.OutputNotWritable, part, err, "cannot continue the partial download")}
		}
		res.Resumed = true
		log("info", "resuming the download", map[string]any{"from": have})
	case resp.StatusCode == http.StatusOK:
		from = 0
		if have > 0 {
			res.Restarts++
			log("warn", "the server sent the whole object again (it ignores ranges, or the object changed): restarting", map[string]any{"had": have})
		}
		meta.Length = resp.ContentLength
		meta.ETag, meta.LastModified = resp.Header.Get("ETag"), resp.Header.Get("Last-Modified")
		meta.URL = red
		if meta.Length <= 0 {
			meta.Length = -1 // unknown: trust the end of the body
		}
		if f, err = os.OpenFile(part, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644); err != nil {
			return false, &permanentError{err: fault.Wrap(fault.OutputNotWritable, part, err, "cannot write the download")}
		}
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable && have > 0 && have == meta.Length:
		return true, nil
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		return false, &permanentError{err: fault.New(fault.RemoteNotFound, red, "the server has no such file (HTTP %d)", resp.StatusCode).
			WithHint("Check source.url.href.")}
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return false, &permanentError{err: fault.New(fault.AuthFailed, red, "the server refused access (HTTP %d)", resp.StatusCode).
			WithHint("Check the credentials in source.url.headers.")}
	default:
		return false, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	defer f.Close()
	// Recorded before the body, so that a part cut short by a full disk
	// can be resumed: the record could not be written after.
	resumable := meta.Length > 0 && writeJSON(metaFile, *meta) == nil
	body := &progress.Reader{R: resp.Body, Done: from, Total: max(meta.Length, 0), Meter: &progress.Meter{}, Report: func(r progress.Report) {
		if o.Logger != nil {
			f := r.Fields()
			f["url"] = red
			o.Logger.Log("progress", "downloading: "+r.String(), f)
		}
	}}
	n, err := copyBounded(f, body, red, from, meta.Length, resumable)
	if err != nil {
		return false, err
	}
	if meta.Length < 0 {
		meta.Length = n
		return true, nil
	}
	fi, err := f.Stat()
	if err != nil {
		return false, err
	}
	if fi.Size() < meta.Length {
		return false, fmt.Errorf("the body ended at %d of %d bytes", fi.Size(), meta.Length)
	}
	return true, nil
}
