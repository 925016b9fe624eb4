package fetch

import (
	"github.com/vmconv/terraform-provider-vmconv/engine/internal/room"

	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
)

// fetchParts downloads the unfinished parts concurrently, each into its own
// range of the file.
func fetchParts(ctx context.Context, c *retryablehttp.Client, rawURL, part string, meta *partMeta, o HTTPOptions, res *Result, metaFile string,
	log func(string, string, map[string]any)) error {
	rm, err := room.In(filepath.Dir(part))
	if err != nil {
		return &permanentError{err: fault.Wrap(fault.OutputNotWritable, filepath.Dir(part), err, "cannot read the free space of the cache folder")}
	}
	need := int64(0)
	for _, p := range meta.Parts {
		need += p.End - p.Start - p.Done
	}
	if need > rm.Usable() {
		// Kept if a part of it is there to resume, else not started.
		return &permanentError{err: rm.TooBig(Redact(rawURL), need, "the download"), discard: need == meta.Length}
	}
	f, err := os.OpenFile(part, os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return &permanentError{err: fault.Wrap(fault.OutputNotWritable, part, err, "cannot write the download")}
	}
	defer f.Close()
	if err := f.Truncate(meta.Length); err != nil {
		return diskFull(Redact(rawURL), rm.Dir, err, meta.Length-need, meta.Length, true)
	}
	var mu sync.Mutex
	errs := make(chan error, len(meta.Parts))
	for i := range meta.Parts {
		if meta.Parts[i].Start+meta.Parts[i].Done >= meta.Parts[i].End {
			errs <- nil
			continue
		}
		go func(p *partRange) {
			errs <- fetchPart(ctx, c, rawURL, f, p, meta, o, &mu, func() {
				mu.Lock()
				writeJSON(metaFile, meta)
				mu.Unlock()
			})
		}(&meta.Parts[i])
	}
	var first error
	for range meta.Parts {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	if err := f.Sync(); err != nil && first == nil {
		first = err
	}
	return first
}

func fetchPart(ctx context.Context, c *retryablehttp.Client, rawURL string, f *os.File, p *partRange, meta *partMeta, o HTTPOptions, mu *sync.Mutex, save func()) error {
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return &permanentError{err: err}
	}
	for k, v := range o.Headers {
		req.Header.Set(k, v)
	}
	mu.Lock()
	from := p.Start + p.Done
	mu.Unlock()
	req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", from, p.End-1))
	if meta.ETag != "" {
		req.Header.Set("If-Range", meta.ETag)
	} else {
		req.Header.Set("If-Range", meta.LastModified)
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent {
		// The object changed (If-Range failed) or ranges stopped working:
		// start over, serially.
		return &permanentError{err: fault.New(fault.SourceChanged, Redact(rawURL), "the server stopped serving ranges of the same object (HTTP %d)", resp.StatusCode).
			WithHint("The file changed on the server during the download. Run terraform apply again.")}
	}
	if start, _, ok := contentRange(resp.Header.Get("Content-Range")); !ok || start != from {
		return fmt.Errorf("the server answered a range from %d with %q", from, resp.Header.Get("Content-Range"))
	}
	buf := make([]byte, 1<<20)
	off := from
	last := time.Now()
	for off < p.End {
		n, rerr := resp.Body.Read(buf[:min(int64(len(buf)), p.End-off)])
		if n > 0 {
			if _, err := f.WriteAt(buf[:n], off); err != nil {
				save()
				if room.IsNoSpace(err) {
					return diskFull(Redact(rawURL), filepath.Dir(f.Name()), err, off, meta.Length, true)
				}
				return &permanentError{err: fault.Wrap(fault.OutputNotWritable, f.Name(), err, "cannot write the download")}
			}
			off += int64(n)
			mu.Lock()
			p.Done = off - p.Start
			mu.Unlock()
			if time.Since(last) > time.Second {
				save()
				last = time.Now()
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			save()
			return fmt.Errorf("connection dropped at %d: %w", off, rerr)
		}
	}
	save()
	if off < p.End {
		return fmt.Errorf("the part ended at %d of %d", off, p.End)
	}
	return nil
}
