package nbd

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// counting is an upstream that records each ReadAt, so tests see how often
// the cache goes to the network and with what alignment.
type counting struct {
	r     io.ReaderAt
	delay time.Duration

	mu    sync.Mutex
	calls [][2]int64 // offset, length
	fail  int        // fail this many calls from now
}

func (c *counting) ReadAt(p []byte, off int64) (int, error) {
	c.mu.Lock()
	c.calls = append(c.calls, [2]int64{off, int64(len(p))})
	fail := c.fail > 0
	c.fail--
	c.mu.Unlock()
	time.Sleep(c.delay)
	if fail {
		return 0, errors.New("connection reset")
	}
	return c.r.ReadAt(p, off)
}

func (c *counting) n() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.calls)
}

// pattern is n bytes where nearby offsets differ, so a misplaced copy shows.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

const bs = 16

func TestCacheReads(t *testing.T) {
	data := pattern(5*bs + 7) // a short tail block
	size := int64(len(data))
	up := &counting{r: bytes.NewReader(data)}
	c := NewCache(up, size, bs, 100)
	for _, tc := range []struct {
		name    string
		off     int64
		n       int
		wantN   int
		wantEOF bool
	}{
		{"inside a block", 3, 5, 5, false},
		{"across one boundary", bs - 2, 4, 4, false},
		{"across several blocks", 5, 3*bs + 1, 3*bs + 1, false},
		{"the tail block", 5 * bs, 7, 7, false},
		{"up to the end", size - 20, 20, 20, false},
		{"past the end", size - 3, 10, 3, true},
		{"at the end", size, 4, 0, true},
		{"beyond the end", size + 100, 4, 0, true},
		{"nothing", 9, 0, 0, false},
		{"everything", 0, int(size), int(size), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := make([]byte, tc.n)
			n, err := c.ReadAt(p, tc.off)
			if n != tc.wantN || (err == io.EOF) != tc.wantEOF || (err != nil && err != io.EOF) {
				t.Fatalf("ReadAt(%d bytes at %d) = %d, %v; want %d, EOF %v", tc.n, tc.off, n, err, tc.wantN, tc.wantEOF)
			}
			if want := data[min(tc.off, size):min(tc.off+int64(n), size)]; !bytes.Equal(p[:n], want) {
				t.Fatalf("bytes % x, want % x", p[:n], want)
			}
		})
	}
	if _, err := c.ReadAt(make([]byte, 1), -1); err == nil {
		t.Error("a negative offset was accepted")
	}
	// Six blocks, each fetched once, whole and aligned, however often and
	// however misaligned they were read above.
	if up.n() != 6 {
		t.Errorf("%d upstream reads for 6 blocks: %v", up.n(), up.calls)
	}
	for _, call := range up.calls {
		if call[0]%bs != 0 || (call[1] != bs && call[0]+call[1] != size) {
			t.Errorf("upstream read of %d bytes at %d is not one whole block", call[1], call[0])
		}
	}
}

func TestCacheEviction(t *testing.T) {
	data := pattern(4 * bs)
	up := &counting{r: bytes.NewReader(data)}
	c := NewCache(up, int64(len(data)), bs, 2)
	for i, step := range []struct {
		block int64
		miss  bool
	}{
		{0, true}, {1, true}, {0, false}, // 0 is now the most recent
		{2, true},  // evicts 1, the least recently used
		{0, false}, // so 0 is still there
		{1, true},  // and 1 is not
		{3, true},  // evicts 2
		{1, false},
	} {
		before := up.n()
		p := make([]byte, 3)
		if _, err := c.ReadAt(p, step.block*bs+5); err != nil || !bytes.Equal(p, data[step.block*bs+5:][:3]) {
			t.Fatalf("step %d: read of block %d: %v % x", i, step.block, err, p)
		}
		if miss := up.n() > before; miss != step.miss {
			t.Fatalf("step %d: block %d went upstream: %v, want %v", i, step.block, miss, step.miss)
		}
	}
}

func TestCacheDoesNotKeepErrors(t *testing.T) {
	data := pattern(3 * bs)
	up := &counting{r: bytes.NewReader(data), fail: 1}
	c := NewCache(up, int64(len(data)), bs, 4)
	p := make([]byte, bs)
	if _, err := c.ReadAt(p, bs); err == nil {
		t.Fatal("an upstream failure was not reported")
	}
	if _, err := c.ReadAt(p, bs); err != nil || !bytes.Equal(p, data[bs:2*bs]) {
		t.Fatalf("the read after a failure: %v", err)
	}
}

// short is an upstream that returns fewer bytes than asked without an error.
type short struct{}

func (short) ReadAt(p []byte, off int64) (int, error) { return len(p) / 2, nil }

func TestCacheShortUpstream(t *testing.T) {
	c := NewCache(short{}, 100, bs, 4)
	if n, err := c.ReadAt(make([]byte, 10), 0); err == nil || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("short upstream read: %d, %v", n, err)
	}
}

func TestCacheConcurrent(t *testing.T) {
	data := pattern(64*bs + 9)
	size := int64(len(data))
	t.Run("one upstream read for a block many want at once", func(t *testing.T) {
		up := &counting{r: bytes.NewReader(data), delay: 50 * time.Millisecond}
		c := NewCache(up, size, bs, 8)
		var wg sync.WaitGroup
		for range 16 {
			wg.Go(func() {
				p := make([]byte, 4)
				if _, err := c.ReadAt(p, 3*bs+2); err != nil || !bytes.Equal(p, data[3*bs+2:][:4]) {
					t.Errorf("read: %v % x", err, p)
				}
			})
		}
		wg.Wait()
		if up.n() != 1 {
			t.Fatalf("%d upstream reads of one block", up.n())
		}
	})
	t.Run("random reads with constant eviction", func(t *testing.T) {
		up := &counting{r: bytes.NewReader(data)}
		c := NewCache(up, size, bs, 3)
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(g), 1))
				for range 300 {
					off := rng.Int64N(size + 10)
					p := make([]byte, rng.IntN(5*bs))
					n, err := c.ReadAt(p, off)
					want := data[min(off, size):min(off+int64(len(p)), size)]
					if err != nil && err != io.EOF || !bytes.Equal(p[:n], want) {
						t.Errorf("%d bytes at %d: got %d, %v", len(p), off, n, err)
						return
					}
				}
			})
		}
		wg.Wait()
	})
}

func ExampleNewCache() {
	data := pattern(100)
	c := NewCache(bytes.NewReader(data), 100, 32, 2)
	p := make([]byte, 8)
	n, err := c.ReadAt(p, 96)
	fmt.Println(n, err)
	// Output: 4 EOF
}
