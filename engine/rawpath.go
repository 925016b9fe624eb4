package engine

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/vmconv/terraform-provider-vmconv/engine/chain"
	"github.com/vmconv/terraform-provider-vmconv/engine/diskformat"
	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/engine/internal/rawcopy"
	"github.com/vmconv/terraform-provider-vmconv/engine/progress"
)

// rawSegments returns the source ranges a disk's raw output can be copied
// from in the kernel, or false when qemu-img must convert it: the output
// is raw, the source is one layer stored raw (a raw image, a flat VMDK),
// and nothing was written into the overlay (fixes, or a journal replayed
// when the appliance mounted the guest, land there, and only qemu-img
// reads the overlay with them).
func rawSegments(ctx context.Context, j *job, d *diskWork) ([]rawcopy.Segment, bool) {
	ranges, ok := rawCopyable(j.plan.Output.Format, d.c)
	if !ok || !untouched(ctx, j, d) {
		return nil, false
	}
	segs := make([]rawcopy.Segment, len(ranges))
	for i, r := range ranges {
		segs[i] = rawcopy.Segment{Path: r.Path, Offset: r.Offset, Length: r.Length}
	}
	return segs, true
}

// rawCopyable returns the source ranges of a chain whose output in format
// can be copied rather than converted, as far as the plan can tell: the
// apply also wants the overlay untouched.
func rawCopyable(format string, c *chain.Chain) ([]chain.RawRange, bool) {
	if diskformat.Format(format) != diskformat.Raw {
		return nil, false
	}
	ranges, ok := c.RawRanges()
	// qemu rounds a raw disk up to whole sectors; the kernel copy would not.
	return ranges, ok && c.VirtualSize()%512 == 0
}

// untouched tells whether the overlay holds nothing of its own. A zeroed or
// discarded range (an fstrim) is no allocated cluster, but it is present in
// the overlay all the same.
func untouched(ctx context.Context, j *job, d *diskWork) bool {
	m, err := j.e.qemu.MapOwn(ctx, d.input, d.inputDriver)
	if err != nil || len(m) == 0 {
		return false
	}
	for _, r := range m {
		if r.Present == nil || *r.Present || r.Data {
			return false
		}
	}
	return true
}

// copyRaw writes a disk's raw output from its raw source in the kernel,
// hashing it behind the copy, and returns its SHA-256. The copy writes the
// source's data ranges verbatim, zeros and all, where qemu-img would have
// skipped zero blocks: the hash, which reads every block anyway, punches
// those out.
func copyRaw(ctx context.Context, j *job, d *diskWork, what string, segs []rawcopy.Segment) (string, error) {
	m := &progress.Meter{}
	st, sum, err := rawcopy.CopySum(ctx, d.tmp, d.c.VirtualSize(), segs, func(done, total int64) {
		if r, ok := m.Update(done, total); ok {
			pct := 100.0
			if total > 0 {
				pct = float64(done) * 100 / float64(total)
			}
			j.sink.Event(Event{Time: time.Now(), Kind: EventProgress, Stage: StageConvert,
				Message: what + " (allocated data): " + r.String(), Percent: pct, Fields: r.Fields()})
		}
	})
	if err != nil {
		return "", rawFault(ctx, err, j.plan, d)
	}
	how := "in the kernel (copy_file_range; a reflink where the file system shares extents)"
	if !st.Kernel {
		how = "through a buffer (the kernel refused to copy between these file systems)"
	}
	j.emit(EventInfo, StageConvert, fmt.Sprintf("raw source to raw output: copied %s of data %s; holes kept, no qemu-img pass", sizeText(st.Data), how),
		map[string]any{"copy": "raw", "data_bytes": st.Data, "kernel": st.Kernel})
	if sum.PunchErr != nil {
		j.emit(EventInfo, StageConvert, "stopped deallocating zero blocks in the output (the output is complete, only less sparse): "+sum.PunchErr.Error(), nil)
	}
	if sum.Punched > 0 {
		j.emit(EventInfo, StageConvert, fmt.Sprintf("deallocated %s of zero blocks in the output", sizeText(sum.Punched)), map[string]any{"punched_bytes": sum.Punched})
	}
	return sum.SHA256, nil
}

// rawFault explains a failed kernel copy as convertFault explains a failed
// qemu-img: a read failure names the source file and the position in the
// guest's disk, a write failure the output.
func rawFault(ctx context.Context, err error, p *Plan, d *diskWork) error {
	var re *rawcopy.ReadError
	var we *rawcopy.WriteError
	switch {
	case ctx.Err() != nil:
	case errors.As(err, &re):
		return fault.Wrap(fault.SourceUnreadable, re.Path, err, "the source disk cannot be read %s into the guest's disk: %v", position(re.Pos, d.c.VirtualSize()), re.Err).
			WithHint("The storage holding the source failed to read that position, or the file changed under the copy. Check the device or the network file system it is on, then apply again. Nothing was written at the output path.").
			WithFact("Position", fmt.Sprintf("byte %d (sector %d) of the guest's disk", re.Pos, re.Pos/512))
	case errors.As(err, &we) && !errors.Is(err, syscall.ENOSPC):
		return fault.Wrap(fault.OutputNotWritable, p.Output.Path, err, "cannot write the output at byte %d", we.Pos).
			WithHint("The file system holding the output refused a write. Check it (is it read-only, or failing?), or choose another output. Nothing was left at the output path.")
	}
	return toolFault(ctx, err, d.out, "cannot copy the raw source to the output")
}
