package fetch

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
)

// server is a real HTTP server on loopback whose misbehaviour each test
// scripts: request n (from 0) is answered by faults[n] when set.
type server struct {
	t       *testing.T
	body    []byte
	mu      sync.Mutex
	n       int
	ranges  []string
	headers []http.Header
	faults  map[int]string // "drop", "503", "short", "norange"
	always  string
}

func newServer(t *testing.T, size int) (*server, *httptest.Server) {
	s := &server{t: t, body: make([]byte, size), faults: map[int]string{}}
	rand.Read(s.body)
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return s, ts
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	n := s.n
	s.n++
	s.ranges = append(s.ranges, r.Header.Get("Range"))
	s.headers = append(s.headers, r.Header.Clone())
	f := s.faults[n]
	if f == "" {
		f = s.always
	}
	s.mu.Unlock()
	switch f {
	case "503":
		http.Error(w, "busy", http.StatusServiceUnavailable)
		return
	case "drop", "short":
		// Announce everything that is asked for, send a third of it, hang
		// up. A third of the asked range, not of the rest of the file, so
		// that whichever parallel part meets the fault comes up short.
		start, end := 0, len(s.body)-1
		if rg := r.Header.Get("Range"); rg != "" {
			if n, _ := fmt.Sscanf(rg, "bytes=%d-%d", &start, &end); n < 2 {
				end = len(s.body) - 1
			}
			w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, end, len(s.body)))
			w.Header().Set("Content-Length", fmt.Sprint(end-start+1))
			w.WriteHeader(http.StatusPartialContent)
		} else {
			w.Header().Set("Content-Length", fmt.Sprint(len(s.body)))
			w.Header().Set("ETag", `"v1"`)
			w.WriteHeader(http.StatusOK)
		}
		w.Write(s.body[start : start+(end-start+1)/3])
		w.(http.Flusher).Flush()
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
		return
	case "norange":
		w.Header().Set("Content-Length", fmt.Sprint(len(s.body)))
		w.WriteHeader(http.StatusOK)
		w.Write(s.body)
		return
	}
	w.Header().Set("ETag", `"v1"`)
	http.ServeContent(w, r, "disk.vmdk", time.Unix(1e9, 0), bytes.NewReader(s.body))
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

type memLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *memLog) Log(level, msg string, f map[string]any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf("%s %s %v", level, msg, f))
}

func opts(l *memLog) HTTPOptions {
	return HTTPOptions{RetryWaitMin: time.Millisecond, RetryWaitMax: 5 * time.Millisecond, Logger: l}
}

func checkFile(t *testing.T, p string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("downloaded %d bytes, not the server's %d", len(got), len(want))
	}
}

func TestDownloadVerifiesAndReuses(t *testing.T) {
	s, ts := newServer(t, 3<<20)
	dest := filepath.Join(t.TempDir(), "disk.vmdk")
	l := &memLog{}
	o := opts(l)
	o.SHA256 = strings.ToUpper(sum(s.body))
	o.Headers = map[string]string{"Authorization": "Bearer s3cr3t-t0ken"}
	r, err := HTTP(context.Background(), ts.URL+"/disk.vmdk?sig=s3cr3t-query", dest, o)
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, dest, s.body)
	if r.SHA256 != sum(s.body) || r.Reused || r.Resumed {
		t.Errorf("result %+v", r)
	}
	if s.headers[0].Get("Authorization") != "Bearer s3cr3t-t0ken" {
		t.Error("custom header not sent")
	}
	// Again: verified and kept, not fetched.
	r, err = HTTP(context.Background(), ts.URL+"/disk.vmdk?sig=s3cr3t-query", dest, o)
	if err != nil || !r.Reused || s.n != 1 {
		t.Fatalf("second download: %+v, %v, %d requests", r, err, s.n)
	}
	for _, line := range l.lines {
		if strings.Contains(line, "s3cr3t") {
			t.Errorf("a secret reached the log: %s", line)
		}
	}
	if len(l.lines) == 0 {
		t.Error("nothing was logged")
	}
	// The download's progress: its first reading and its end, with the
	// total and a rate, redacted like the rest.
	var progress []string
	for _, line := range l.lines {
		if strings.HasPrefix(line, "progress downloading: ") {
			progress = append(progress, line)
		}
	}
	if len(progress) != 2 || !strings.Contains(progress[1], "3.0 MiB of 3.0 MiB (100%)") || !strings.Contains(progress[1], "total_bytes:3145728") {
		t.Errorf("progress reports %q", progress)
	}
}

func TestDownloadResumesAfterDroppedConnection(t *testing.T) {
	s, ts := newServer(t, 4<<20)
	s.faults[0], s.faults[1] = "drop", "drop"
	dest := filepath.Join(t.TempDir(), "disk.vmdk")
	r, err := HTTP(context.Background(), ts.URL, dest, opts(&memLog{}))
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, dest, s.body)
	if !r.Resumed || r.Restarts != 0 {
		t.Errorf("result %+v", r)
	}
	// The second request continued where the first stopped; the third
	// where the second stopped.
	third := len(s.body) / 3
	want := []string{"", fmt.Sprintf("bytes=%d-", third), fmt.Sprintf("bytes=%d-", third+(len(s.body)-third)/3)}
	for i, w := range want {
		if s.ranges[i] != w {
			t.Errorf("request %d Range %q, want %q (all: %q)", i, s.ranges[i], w, s.ranges)
		}
	}
	if s.headers[1].Get("If-Range") != `"v1"` {
		t.Error("resume not guarded by If-Range")
	}
}

func TestDownloadRetries5xx(t *testing.T) {
	s, ts := newServer(t, 1<<20)
	s.faults[0], s.faults[1], s.faults[2] = "503", "503", "503"
	dest := filepath.Join(t.TempDir(), "disk.vmdk")
	if _, err := HTTP(context.Background(), ts.URL, dest, opts(&memLog{})); err != nil {
		t.Fatal(err)
	}
	checkFile(t, dest, s.body)
	if s.n != 4 {
		t.Errorf("%d requests, want 4", s.n)
	}
}

func TestDownloadRestartsWhenRangesAreIgnored(t *testing.T) {
	s, ts := newServer(t, 2<<20)
	s.faults[0] = "drop"
	s.always = "norange"
	dest := filepath.Join(t.TempDir(), "disk.vmdk")
	r, err := HTTP(context.Background(), ts.URL, dest, opts(&memLog{}))
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, dest, s.body)
	if r.Restarts != 1 || r.Resumed {
		t.Errorf("result %+v", r)
	}
}

func TestDownloadGivesUpOnAServerThatAlwaysDrops(t *testing.T) {
	s, ts := newServer(t, 1<<20)
	s.always = "short"
	dest := filepath.Join(t.TempDir(), "disk.vmdk")
	o := opts(&memLog{})
	o.Attempts = 3
	_, err := HTTP(context.Background(), ts.URL, dest, o)
	if fault.CodeOf(err) != fault.FetchFailed || !strings.Contains(err.Error(), "3 attempts") {
		t.Fatalf("error %v", err)
	}
	if _, err := os.Stat(dest); err == nil {
		t.Error("an incomplete download reached dest")
	}
	// The partial file stays, for the next apply to resume.
	if fi, err := os.Stat(dest + ".part"); err != nil || fi.Size() == 0 {
		t.Error("the partial download was not kept for resuming")
	}
}

func TestDownloadChecksumMismatch(t *testing.T) {
	_, ts := newServer(t, 1<<20)
	dest := filepath.Join(t.TempDir(), "disk.vmdk")
	o := opts(&memLog{})
	o.SHA256 = strings.Repeat("ab", 32)
	_, err := HTTP(context.Background(), ts.URL, dest, o)
	if fault.CodeOf(err) != fault.ChecksumMismatch || !strings.Contains(err.Error(), strings.Repeat("ab", 32)) {
		t.Fatalf("error %v", err)
	}
	for _, p := range []string{dest, dest + ".part"} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s kept after a checksum mismatch", p)
		}
	}
}

func TestDownloadNotFoundIsPermanent(t *testing.T) {
	ts := httptest.NewServer(http.NotFoundHandler())
	defer ts.Close()
	_, err := HTTP(context.Background(), ts.URL+"/nope.vmdk", filepath.Join(t.TempDir(), "x"), opts(&memLog{}))
	if fault.CodeOf(err) != fault.RemoteNotFound {
		t.Fatalf("error %v", err)
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"https://user:pw@host/a/b.vmdk?sig=x&t=y#f": "https://host/a/b.vmdk?REDACTED",
		"http://host/disk.vmdk":                     "http://host/disk.vmdk",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestContentRange(t *testing.T) {
	for h, want := range map[string][3]int64{"bytes 10-99/100": {10, 100, 1}, "bytes 0-9/*": {0, 0, 1}, "garbage": {0, 0, 0}} {
		s, tot, ok := contentRange(h)
		if s != want[0] || tot != want[1] || ok != (want[2] == 1) {
			t.Errorf("contentRange(%q) = %d %d %v", h, s, tot, ok)
		}
	}
}

func TestDownloadInParallelRangesResumesAPart(t *testing.T) {
	s, ts := newServer(t, 32<<20)
	s.faults[2] = "drop" // one of the four parts hangs up early
	dest := filepath.Join(t.TempDir(), "disk.vmdk")
	o := opts(&memLog{})
	o.Parallel = 4
	r, err := HTTP(context.Background(), ts.URL, dest, o)
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, dest, s.body)
	bounded := 0
	for _, rg := range s.ranges {
		if strings.Count(rg, "-") == 1 && !strings.HasSuffix(rg, "-") {
			bounded++
		}
	}
	if bounded < 5 || !r.Resumed {
		t.Errorf("ranges %q, result %+v: want 4 parts and a resumed one", s.ranges, r)
	}
}
