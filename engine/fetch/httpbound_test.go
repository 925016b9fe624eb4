package fetch

import (
	"github.com/vmconv/terraform-provider-vmconv/internal/testimg"

	"github.com/vmconv/terraform-provider-vmconv/engine/internal/room"

	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
)

// TestDownloadEndlessBodyIsBounded downloads from a loopback server that
// announces no length and never stops sending, into a small real file
// system. The download stops at the cache's room, is refused at once (one
// request, no retries), says why without telling the user to apply again
// for a resume, and leaves no .part behind.
func TestDownloadEndlessBodyIsBounded(t *testing.T) {
	dir := testimg.SmallFS(t, 16<<20)
	var requests atomic.Int32
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		w.WriteHeader(http.StatusOK) // chunked: no Content-Length
		buf := bytes.Repeat([]byte("endless "), 8192)
		for r.Context().Err() == nil {
			if _, err := w.Write(buf); err != nil {
				return
			}
		}
	}))
	defer ts.Close()
	dest := filepath.Join(dir, "disk.vmdk")
	_, err := HTTP(context.Background(), ts.URL+"/disk.vmdk?token=s3cret", dest, opts(&memLog{}))
	fe, ok := fault.As(err)
	if !ok || fe.Code != fault.NoSpace || !strings.Contains(fe.Msg, "announced no length") || !strings.Contains(fe.Msg, dir) {
		t.Fatalf("error %v, want no_space about a body without a length, naming %s", err, dir)
	}
	if fe.File != ts.URL+"/disk.vmdk?REDACTED" {
		t.Errorf("the fault names %q, not the redacted URL", fe.File)
	}
	if strings.Contains(fe.Hint, "resumes") || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("misleading hint or leaked secret: %s (hint %q)", err, fe.Hint)
	}
	if n := requests.Load(); n != 1 {
		t.Errorf("%d requests: an endless body is not worth retrying", n)
	}
	testimg.AssertEmpty(t, dir)
}

// TestDownloadLengthThatDoesNotFit is refused before a byte is written,
// by a serial download and by a parallel one.
func TestDownloadLengthThatDoesNotFit(t *testing.T) {
	body := bytes.NewReader(make([]byte, 32<<20))
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"v1"`)
		http.ServeContent(w, r, "disk.vmdk", time.Unix(1e9, 0), body)
	}))
	defer ts.Close()
	for name, parallel := range map[string]int{"serial": 1, "parallel": 4} {
		t.Run(name, func(t *testing.T) {
			dir := testimg.SmallFS(t, 16<<20)
			o := opts(&memLog{})
			o.Parallel = parallel
			_, err := HTTP(context.Background(), ts.URL+"/disk.vmdk", filepath.Join(dir, "disk.vmdk"), o)
			fe, ok := fault.As(err)
			if !ok || fe.Code != fault.NoSpace || !strings.Contains(fe.Msg, "the download needs 32.0 MiB") || !strings.Contains(fe.Hint, "cache_dir") {
				t.Fatalf("error %v, want no_space: the download needs 32 MiB", err)
			}
			testimg.AssertEmpty(t, dir)
		})
	}
}

// TestDownloadDiskFillsUpMidway fills the cache's file system while a
// download of known length is under way: the fault says so and keeps the
// part, and once space is freed the next download resumes it.
func TestDownloadDiskFillsUpMidway(t *testing.T) {
	dir := testimg.SmallFS(t, 16<<20)
	body := make([]byte, 8<<20)
	rand.Read(body)
	half := make(chan struct{})
	filled := make(chan struct{})
	var first atomic.Bool
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"v1"`)
		if !first.Swap(true) {
			w.Header().Set("Content-Length", fmt.Sprint(len(body)))
			w.WriteHeader(http.StatusOK)
			w.Write(body[:2<<20])
			w.(http.Flusher).Flush()
			close(half)
			<-filled
			w.Write(body[2<<20:])
			return
		}
		http.ServeContent(w, r, "disk.vmdk", time.Unix(1e9, 0), bytes.NewReader(body))
	}))
	defer ts.Close()
	filler := filepath.Join(dir, "filler")
	go func() {
		<-half
		// Leave less than the rest of the download.
		os.WriteFile(filler, make([]byte, freeIn(t, dir)-(1<<20)), 0o644)
		close(filled)
	}()
	dest := filepath.Join(dir, "disk.vmdk")
	_, err := HTTP(context.Background(), ts.URL+"/disk.vmdk", dest, opts(&memLog{}))
	fe, ok := fault.As(err)
	if !ok || fe.Code != fault.NoSpace || !strings.Contains(fe.Msg, "filled up during the download") || !strings.Contains(fe.Hint, "resumes where it stopped") {
		t.Fatalf("error %v, want no_space: filled up, resumable", err)
	}
	var names []string
	es, _ := os.ReadDir(dir)
	for _, e := range es {
		names = append(names, e.Name())
	}
	if fmt.Sprint(names) != "[disk.vmdk.json.part disk.vmdk.part filler]" {
		t.Fatalf("after the fault the cache holds %v, want the resumable part, its record and the filler", names)
	}
	os.Remove(filler)
	r, err := HTTP(context.Background(), ts.URL+"/disk.vmdk", dest, opts(&memLog{}))
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, dest, body)
	if !r.Resumed {
		t.Errorf("the second download started over: %+v", r)
	}
}

func freeIn(t *testing.T, dir string) int64 {
	rm, err := room.In(dir)
	if err != nil {
		t.Error(err)
	}
	return rm.Free
}
