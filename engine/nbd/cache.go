package nbd

import (
	"container/list"
	"errors"
	"fmt"
	"io"
	"sync"
)

// cache keeps recently read aligned blocks of a slow ReaderAt. QEMU reads a
// qcow2 image in small pieces (headers, L1/L2 tables, 64 KiB clusters) and
// rereads its metadata often; over a remote volume download each of those
// would be a network round trip, so reads are widened to whole blocks.
type cache struct {
	r    io.ReaderAt
	size int64
	bs   int64
	max  int

	mu     sync.Mutex
	blocks map[int64]*list.Element // block index -> element of lru holding a *block
	lru    *list.List              // most recently used first
}

// block is one aligned block; ready is closed once data or err is set, so
// concurrent readers of a block that is still loading wait for that one
// upstream read instead of making their own.
type block struct {
	idx   int64
	ready chan struct{}
	data  []byte
	err   error
}

// NewCache wraps a slow ReaderAt (each ReadAt is a network round trip) with
// an LRU cache of aligned blocks: blockSize bytes per block (e.g. 1 MiB), at
// most maxBlocks blocks (fewer than 1 means 1). It is safe for concurrent
// use. Reads past size are short (io.EOF) as io.ReaderAt requires. A failed
// upstream read is returned to the readers waiting for it and not cached, so
// the next read tries again. It panics if blockSize is not positive.
func NewCache(r io.ReaderAt, size int64, blockSize int64, maxBlocks int) io.ReaderAt {
	if blockSize <= 0 {
		panic(fmt.Sprintf("nbd.NewCache: block size %d", blockSize))
	}
	return &cache{r: r, size: size, bs: blockSize, max: max(maxBlocks, 1),
		blocks: map[int64]*list.Element{}, lru: list.New()}
}

func (c *cache) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("nbd: read at negative offset %d", off)
	}
	if off >= c.size {
		return 0, io.EOF
	}
	want := p
	if int64(len(p)) > c.size-off {
		want = p[:c.size-off]
	}
	n := 0
	for n < len(want) {
		pos := off + int64(n)
		idx := pos / c.bs
		data, err := c.block(idx)
		if err != nil {
			return n, err
		}
		n += copy(want[n:], data[pos-idx*c.bs:])
	}
	if len(want) < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// block returns block idx, from the cache or from one upstream read. The
// returned slice is never modified, so it stays valid after eviction.
func (c *cache) block(idx int64) ([]byte, error) {
	c.mu.Lock()
	if e, ok := c.blocks[idx]; ok {
		c.lru.MoveToFront(e)
		b := e.Value.(*block)
		c.mu.Unlock()
		<-b.ready
		return b.data, b.err
	}
	b := &block{idx: idx, ready: make(chan struct{})}
	c.blocks[idx] = c.lru.PushFront(b)
	for c.lru.Len() > c.max {
		// An evicted block that is still loading finishes for its waiters,
		// who hold it directly; it is just not found again.
		old := c.lru.Back()
		c.lru.Remove(old)
		delete(c.blocks, old.Value.(*block).idx)
	}
	c.mu.Unlock()

	b.data, b.err = c.load(idx)
	if b.err != nil {
		c.mu.Lock()
		if e, ok := c.blocks[idx]; ok && e.Value.(*block) == b {
			c.lru.Remove(e)
			delete(c.blocks, idx)
		}
		c.mu.Unlock()
	}
	close(b.ready)
	return b.data, b.err
}

func (c *cache) load(idx int64) ([]byte, error) {
	start := idx * c.bs
	buf := make([]byte, min(c.bs, c.size-start))
	n, err := c.r.ReadAt(buf, start)
	if n == len(buf) {
		return buf, nil // io.ReaderAt may say EOF along with the last bytes
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return nil, fmt.Errorf("nbd: upstream read of %d bytes at offset %d returned %d: %w", len(buf), start, n, err)
}
