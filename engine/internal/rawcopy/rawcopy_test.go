package rawcopy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

const mib = 1 << 20

// sparseFile writes size bytes with random data at each [offset, length].
func sparseFile(t *testing.T, path string, size int64, data [][2]int64) []byte {
	t.Helper()
	want := make([]byte, size)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewSource(size))
	for _, d := range data {
		b := want[d[0] : d[0]+d[1]]
		r.Read(b)
		if _, err := f.WriteAt(b, d[0]); err != nil {
			t.Fatal(err)
		}
	}
	return want
}

func blocks(t *testing.T, path string) int64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512
}

func TestCopyKeepsHoles(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	const size = 8*mib + 1000 // not a multiple of a block: the tail is data too
	want := sparseFile(t, src, size, [][2]int64{{mib, mib}, {5 * mib, 100}, {size - 500, 500}})
	var last, total int64
	st, err := Copy(context.Background(), dst, size, []Segment{{Path: src, Length: size}}, func(done, tot int64) { last, total = done, tot })
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(dst)
	if !bytes.Equal(got, want) {
		t.Fatal("the output differs from the source")
	}
	if st.Data != last || last != total || total == 0 {
		t.Errorf("progress ended at %d of %d, stats say %d", last, total, st.Data)
	}
	// Every hole of the source is a hole of the output: the data is three
	// ranges of at most 1 MiB plus block rounding, of 8 MiB.
	if b := blocks(t, dst); b > 2*mib {
		t.Errorf("the output allocates %d bytes; the source's holes were filled", b)
	}
	if st.Data >= size/2 {
		t.Errorf("copied %d bytes of a file with about 1 MiB of data", st.Data)
	}
	t.Logf("copied %d bytes, kernel=%v, output allocates %d", st.Data, st.Kernel, blocks(t, dst))
}

// TestCopySegments builds one disk from slices of two files, the way a flat
// VMDK's extents make one: offsets in each file and positions in the output
// must both be right.
func TestCopySegments(t *testing.T) {
	dir := t.TempDir()
	a, b, dst := filepath.Join(dir, "a"), filepath.Join(dir, "b"), filepath.Join(dir, "dst")
	wa := sparseFile(t, a, 4*mib, [][2]int64{{0, 4 * mib}})
	wb := sparseFile(t, b, 3*mib, [][2]int64{{512 * 1024, mib}, {2 * mib, 4096}})
	segs := []Segment{{Path: a, Offset: mib, Length: 2 * mib}, {Path: b, Offset: 512, Length: 3*mib - 512}}
	size := int64(2*mib + 3*mib - 512)
	if _, err := Copy(context.Background(), dst, size, segs, nil); err != nil {
		t.Fatal(err)
	}
	want := append(append([]byte{}, wa[mib:3*mib]...), wb[512:]...)
	got, _ := os.ReadFile(dst)
	if !bytes.Equal(got, want) {
		t.Fatal("the output is not the two slices in order")
	}
	if _, err := Copy(context.Background(), dst, size+1, segs, nil); err == nil {
		t.Error("segments that do not add up to the disk were accepted")
	}
	// Hashed behind the copy, whose marks then fall off block boundaries.
	h := sha256.Sum256(want)
	if _, sum, err := CopySum(context.Background(), filepath.Join(dir, "dst2"), size, segs, nil); err != nil || sum.SHA256 != hex.EncodeToString(h[:]) {
		t.Errorf("CopySum of the slices: %v, %+v", err, sum)
	}
}

// TestCopySourceShrinks truncates the source between two chunks of the
// copy: a read error naming the source and the position in the disk.
func TestCopySourceShrinks(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	const size = 160 * mib
	sparseFile(t, src, size, [][2]int64{{0, 150 * mib}})
	once := false
	_, _, err := CopySum(context.Background(), filepath.Join(dir, "dst"), size, []Segment{{Path: src, Length: size}}, func(done, total int64) {
		if !once {
			once = true
			os.Truncate(src, 10*mib)
		}
	})
	var re *ReadError
	// Where the first chunk ended: at most one chunk in, past the 10 MiB left.
	if !errors.As(err, &re) || re.Path != src || re.Pos < 10*mib || re.Pos > chunk {
		t.Fatalf("got %v, want a read error of %s between bytes %d and %d", err, src, 10*mib, chunk)
	}
}

// TestCopyRefusesFIFO: a source swapped for a FIFO since the plan is
// refused at once, not waited on.
func TestCopyRefusesFIFO(t *testing.T) {
	p := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Copy(context.Background(), filepath.Join(t.TempDir(), "dst"), mib, []Segment{{Path: p, Length: mib}}, nil)
	if err == nil || !strings.Contains(err.Error(), "no longer a regular file") {
		t.Fatalf("got %v", err)
	}
}

func TestCopyCancelled(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	sparseFile(t, src, 2*mib, [][2]int64{{0, 2 * mib}})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Copy(ctx, filepath.Join(dir, "dst"), 2*mib, []Segment{{Path: src, Length: 2 * mib}}, nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want cancelled", err)
	}
}

// TestCopyAcrossFileSystems copies from a tmpfs to the test's folder, where
// the kernel may refuse copy_file_range (EXDEV) and the buffered copy runs.
func TestCopyAcrossFileSystems(t *testing.T) {
	shm, err := os.MkdirTemp("/dev/shm", "rawcopy-")
	if err != nil {
		t.Skip("no /dev/shm:", err)
	}
	defer os.RemoveAll(shm)
	src, dst := filepath.Join(shm, "src"), filepath.Join(t.TempDir(), "dst")
	want := sparseFile(t, src, 6*mib, [][2]int64{{mib, 3 * mib}})
	st, err := Copy(context.Background(), dst, 6*mib, []Segment{{Path: src, Length: 6 * mib}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(dst); !bytes.Equal(got, want) {
		t.Fatal("the output differs from the source")
	}
	t.Logf("kernel copy across file systems: %v", st.Kernel)
}

func TestSumPunchesZeroBlocks(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "img")
	const size = 4 * mib
	// Written in full, as a thick disk is: data, then 1 MiB + 4 KiB of
	// zeros at an unaligned start, then data.
	want := make([]byte, size)
	rand.New(rand.NewSource(1)).Read(want)
	zs, ze := int64(mib+100), int64(2*mib+4096+100)
	clear(want[zs:ze])
	if err := os.WriteFile(p, want, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(want)
	plain, err := Sum(context.Background(), p, false)
	if err != nil || plain.SHA256 != hex.EncodeToString(sum[:]) || plain.Punched != 0 {
		t.Fatalf("sum without punching: %+v %v", plain, err)
	}
	before := blocks(t, p)
	got, err := Sum(context.Background(), p, true)
	if err != nil || got.SHA256 != plain.SHA256 {
		t.Fatalf("sum with punching: %+v %v", got, err)
	}
	// The whole blocks inside the zero run: from the first block boundary
	// after its start to the last one before its end.
	wantPunched := (ze/4096)*4096 - ((zs+4095)/4096)*4096
	if got.Punched != wantPunched {
		t.Errorf("punched %d bytes, want %d", got.Punched, wantPunched)
	}
	if after := blocks(t, p); before-after < wantPunched {
		t.Errorf("allocation went from %d to %d bytes, want %d fewer", before, after, wantPunched)
	}
	if b, _ := os.ReadFile(p); !bytes.Equal(b, want) {
		t.Fatal("punching changed the content")
	}
	// A hole is hashed as zeros without being read.
	again, err := Sum(context.Background(), p, false)
	if err != nil || again.SHA256 != plain.SHA256 {
		t.Fatalf("sum over the holes: %+v %v", again, err)
	}
}

// TestCopySum hashes behind a copy of several chunks: the hash must be the
// output's whole content, holes as zeros, with the zero blocks written in
// the data punched out, whichever of the copy and the hash runs ahead.
func TestCopySum(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	const size = 200 * mib
	want := sparseFile(t, src, size, [][2]int64{{3 * mib, 70 * mib}, {100 * mib, 70 * mib}})
	// 8 MiB of zeros written as data inside the second range.
	zs := int64(120 * mib)
	clear(want[zs : zs+8*mib])
	f, _ := os.OpenFile(src, os.O_WRONLY, 0)
	f.WriteAt(want[zs:zs+8*mib], zs)
	f.Close()
	st, sum, err := CopySum(context.Background(), dst, size, []Segment{{Path: src, Length: size}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(want)
	if sum.SHA256 != hex.EncodeToString(h[:]) {
		t.Error("the hash is not the output's content")
	}
	if sum.Punched != 8*mib {
		t.Errorf("punched %d bytes, want %d", sum.Punched, 8*mib)
	}
	if st.Data != 140*mib {
		t.Errorf("copied %d bytes, want %d", st.Data, 140*mib)
	}
	if got, _ := os.ReadFile(dst); !bytes.Equal(got, want) {
		t.Fatal("the output differs from the source")
	}
	if a := blocks(t, dst); a > 133*mib {
		t.Errorf("the output allocates %d bytes for 132 MiB of non-zero data", a)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := CopySum(ctx, filepath.Join(dir, "dst2"), size, []Segment{{Path: src, Length: size}}, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}
