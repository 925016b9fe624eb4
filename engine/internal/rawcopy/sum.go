package rawcopy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"

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
}

// Sum computes the SHA-256 of the file at path. Holes are hashed from a
// zero buffer instead of being read. With punch, every run of all-zero
// 4 KiB blocks found in the data is deallocated (the file must then be
// writable), which keeps an output from a thick-provisioned source as
// sparse as qemu-img's zero detection would have made it; the hash reads
// those blocks anyway, so finding them costs a compare.
func Sum(ctx context.Context, path string, punch bool) (SumResult, error) {
	flag := os.O_RDONLY
	if punch {
		flag = os.O_RDWR
	}
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return SumResult{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return SumResult{}, err
	}
	ranges, err := DataRanges(f, 0, fi.Size())
	if err != nil {
		return SumResult{}, err
	}
	h := sha256.New()
	var res SumResult
	hashZeros := func(n int64) {
		for n > 0 {
			k := min(n, int64(len(zeros)))
			h.Write(zeros[:k])
			n -= k
		}
	}
	buf := make([]byte, readBuf)
	var pos int64
	for _, r := range ranges {
		hashZeros(r[0] - pos)
		for off, end := r[0], r[0]+r[1]; off < end; {
			if err := ctx.Err(); err != nil {
				return res, err
			}
			b := buf[:min(int64(len(buf)), end-off)]
			n, err := f.ReadAt(b, off)
			if err != nil && !(errors.Is(err, io.EOF) && n == len(b)) {
				return res, err
			}
			h.Write(b)
			if punch {
				p, err := punchZeros(f, b, off)
				res.Punched += p
				if err != nil {
					return res, err
				}
			}
			off += int64(n)
		}
		pos = r[0] + r[1]
	}
	hashZeros(fi.Size() - pos)
	res.SHA256 = hex.EncodeToString(h.Sum(nil))
	return res, nil
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
