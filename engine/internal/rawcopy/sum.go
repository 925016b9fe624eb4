package rawcopy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"hash"
	"io"
	"os"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

const (
	block   = 4096 // the unit a zero run is detected and punched in
	readBuf = 4 << 20
)

var zeros = make([]byte, readBuf)

// SumResult is what Sum found.
type SumResult struct {
	SHA256 string
	// Punched is the bytes of zero blocks turned into holes.
	Punched int64
	// PunchErr is why punching stopped early, if it did.
	PunchErr error
}

// Sum computes the SHA-256 of the file at path. Holes are hashed from a
// zero buffer instead of being read. With punch, every run of all-zero
// 4 KiB blocks found in the data is deallocated (the file must then be
// writable), which keeps an output from a thick-provisioned source as
// sparse as qemu-img's zero detection would have made it; the hash reads
// those blocks anyway, so finding them costs a compare.
func Sum(ctx context.Context, path string, punch bool) (SumResult, error) {
	h, err := newHasher(ctx, path, punch)
	if err != nil {
		return SumResult{}, err
	}
	defer h.f.Close()
	fi, err := h.f.Stat()
	if err != nil {
		return SumResult{}, err
	}
	if err := h.upTo(fi.Size()); err != nil {
		return h.res, err
	}
	return h.done(), nil
}

// hasher hashes a file from the start, up to offsets that only grow.
type hasher struct {
	ctx   context.Context
	f     *os.File
	punch bool
	h     hash.Hash
	buf   []byte
	pos   int64
	res   SumResult
}

func newHasher(ctx context.Context, path string, punch bool) (*hasher, error) {
	flag := os.O_RDONLY
	if punch {
		flag = os.O_RDWR
	}
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return nil, err
	}
	return &hasher{ctx: ctx, f: f, punch: punch, h: sha256.New(), buf: make([]byte, readBuf)}, nil
}

// zeros hashes n zero bytes: a hole of the whole virtual size can take a
// minute, so it stops when the context ends.
func (x *hasher) zeros(n int64) error {
	for n > 0 {
		if err := x.ctx.Err(); err != nil {
			return err
		}
		k := min(n, int64(len(zeros)))
		x.h.Write(zeros[:k])
		n -= k
	}
	return nil
}

// upTo hashes the file from where it stopped to end, which must be final.
func (x *hasher) upTo(end int64) error {
	if end <= x.pos {
		return nil
	}
	ranges, err := DataRanges(x.f, x.pos, end-x.pos)
	if err != nil {
		return err
	}
	for _, r := range ranges {
		if err := x.zeros(r[0] - x.pos); err != nil {
			return err
		}
		for off, stop := r[0], r[0]+r[1]; off < stop; {
			if err := x.ctx.Err(); err != nil {
				return err
			}
			b := x.buf[:min(int64(len(x.buf)), stop-off)]
			n, err := x.f.ReadAt(b, off)
			if err != nil && !(errors.Is(err, io.EOF) && n == len(b)) {
				return err
			}
			x.h.Write(b)
			if x.punch {
				p, err := punchZeros(x.f, b, off)
				x.res.Punched += p
				if err != nil {
					// Holes only save space: the content is the same.
					x.punch, x.res.PunchErr = false, err
				}
			}
			off += int64(n)
		}
		x.pos = r[0] + r[1]
	}
	if err := x.zeros(end - x.pos); err != nil {
		return err
	}
	x.pos = end
	return nil
}

func (x *hasher) done() SumResult {
	x.res.SHA256 = hex.EncodeToString(x.h.Sum(nil))
	return x.res
}

// CopySum is Copy with the output's Sum (punching zero blocks) computed
// behind the copy as it goes, and the output flushed once copied, so the
// kernel's copy, the flush and the hash overlap instead of following one
// another: on a sparse disk the hash of the whole virtual size, holes
// included, is the longest of the three.
func CopySum(ctx context.Context, dst string, size int64, segs []Segment, progress func(done, total int64)) (Stats, SumResult, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var mark atomic.Int64
	wake := make(chan struct{}, 1)
	copied := make(chan struct{})
	type copyResult struct {
		st  Stats
		err error
	}
	res := make(chan copyResult, 1)
	go func() {
		st, err := copyTo(ctx, dst, size, segs, progress, func(end int64) {
			mark.Store(end)
			select {
			case wake <- struct{}{}:
			default:
			}
		})
		if err != nil {
			cancel() // before the hasher sees the copy end, so it stops
		}
		close(copied)
		if err == nil {
			if err = Fsync(dst); err != nil {
				err = &WriteError{Pos: size, Err: err}
				cancel()
			}
		}
		res <- copyResult{st, err}
	}()
	// The copy creates the file: wait for its first mark or its end.
	select {
	case <-wake:
	case <-copied:
	}
	c, err := hashBehind(ctx, dst, size, &mark, wake, copied)
	if err != nil {
		cancel() // the copy need not go on
	}
	r := <-res
	if r.err != nil {
		return r.st, SumResult{}, r.err
	}
	return r.st, c, err
}

// hashBehind hashes dst up to each mark as the copy raises it, and the
// rest once the copy has ended.
func hashBehind(ctx context.Context, dst string, size int64, mark *atomic.Int64, wake, copied chan struct{}) (SumResult, error) {
	x, err := newHasher(ctx, dst, true)
	if err != nil {
		return SumResult{}, err
	}
	defer x.f.Close()
	for {
		select {
		case <-wake:
			if err := x.upTo(mark.Load()); err != nil {
				return SumResult{}, err
			}
			continue
		case <-copied:
		}
		if err := ctx.Err(); err != nil {
			return SumResult{}, err
		}
		if err := x.upTo(size); err != nil {
			return SumResult{}, err
		}
		return x.done(), nil
	}
}

// Fsync flushes a file's data to its storage.
func Fsync(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// punchZeros deallocates the runs of whole zero blocks of b, which holds the
// file's bytes from off. A partial block at either end stays as it is.
func punchZeros(f *os.File, b []byte, off int64) (int64, error) {
	var punched int64
	start := int64(-1)
	flush := func(end int64) error {
		if start < 0 {
			return nil
		}
		err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, start, end-start)
		for errors.Is(err, unix.EINTR) {
			err = unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, start, end-start)
		}
		if err == nil {
			punched += end - start
		}
		start = -1
		if errors.Is(err, unix.EOPNOTSUPP) {
			return nil // a file system without holes keeps the zeros
		}
		return err
	}
	first := (off + block - 1) / block * block
	for at := first; at+block <= off+int64(len(b)); at += block {
		if bytes.Equal(b[at-off:at-off+block], zeros[:block]) {
			if start < 0 {
				start = at
			}
			continue
		}
		if err := flush(at); err != nil {
			return punched, err
		}
	}
	return punched, flush((off + int64(len(b))) / block * block)
}
