package engine

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/engine/internal/run"
)

// qemuIOError matches what qemu-img convert prints when a request fails:
// "error while reading at byte N: M", "error while reading block status at
// offset N: M", "error while writing at byte N: M". N is a guest (virtual)
// byte offset, the same for every layer of the chain.
var qemuIOError = regexp.MustCompile(`error while (reading|writing)( block status)?(?: at)? (?:byte|offset) (\d+): (.+)$`)

// ioError is one failed read or write, as qemu-img reported it.
type ioError struct {
	write  bool
	offset int64
	msg    string // qemu's reason: "Invalid argument"
	line   string // qemu's whole line, without the "qemu-img: " prefix
}

// parseIOError finds the last read or write failure in qemu-img's stderr.
func parseIOError(stderr string) (ioError, bool) {
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		m := qemuIOError.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		off, err := strconv.ParseInt(m[3], 10, 64)
		if err != nil {
			continue
		}
		return ioError{write: m[1] == "writing", offset: off, msg: m[4], line: strings.TrimPrefix(l, "qemu-img: ")}, true
	}
	return ioError{}, false
}

// convertFault explains a failed qemu-img convert. A read failure is about
// the source, at a position in the guest's disk: it names the source file
// and the position, with qemu's reason. A write failure (a full disk) is
// about the output. The command is named, never its argv.
func convertFault(ctx context.Context, err error, p *Plan) error {
	var re *run.Error
	if ctx.Err() != nil || !errors.As(err, &re) {
		return toolFault(ctx, err, p.Output.Path, "qemu-img convert failed")
	}
	io, ok := parseIOError(re.Stderr)
	switch {
	case !ok:
		return fault.Wrap(fault.ToolFailed, p.Output.Path, err, "qemu-img convert failed").
			WithFact("Source", p.Source.Path).
			WithHint("Nothing was written at the output path. qemu-img's message above says what failed.")
	case io.write && strings.Contains(io.msg, "No space left on device"):
		return toolFault(ctx, toolMessage{io.line, err}, p.Output.Path, "cannot write the output")
	case io.write:
		return fault.Wrap(fault.OutputNotWritable, p.Output.Path, toolMessage{io.line, err}, "cannot write the output at byte %d", io.offset).
			WithFact("Command", re.Cmd).
			WithHint("The file system holding the output refused a write. Check it (is it read-only, or failing?), or choose another output.path. Nothing was left at the output path.")
	}
	code, hint := fault.CorruptImage, "The data stored there cannot be decoded: the file is damaged at that position "+
		"(a corrupt compressed grain or grain marker of a streamOptimized VMDK, a truncated copy...), although its headers are valid. "+
		"Copy or export the disk again from its origin and compare checksums. Nothing was written at the output path."
	if strings.Contains(io.msg, "Input/output error") {
		code, hint = fault.SourceUnreadable, "The storage holding the source failed to read that position. "+
			"Check the device or the network file system it is on, then apply again. Nothing was written at the output path."
	}
	fe := fault.Wrap(code, p.Source.Path, toolMessage{io.line, err}, "the source disk cannot be read %s into the guest's disk: %s", position(io.offset, p.Source.VirtualSize), io.msg).
		WithHint("%s", hint).
		WithFact("Position", fmt.Sprintf("byte %d (sector %d) of the guest's disk", io.offset, io.offset/512)).
		WithFact("Command", re.Cmd)
	if len(p.Source.Chain) > 1 {
		fe.WithFact("Chain", strings.Join(p.Source.ChainPaths(), ", ")+" (the position may lie in any of these files)")
	}
	return fe
}

// toolMessage is qemu's own line, standing for the run error it came from
// (whose text repeats the command and exit status).
type toolMessage struct {
	line string
	err  error
}

func (t toolMessage) Error() string { return t.line }
func (t toolMessage) Unwrap() error { return t.err }

// position says where off lies in a disk of size bytes: "3 MiB (37% of 8 MiB)".
func position(off, size int64) string {
	s := sizeText(off)
	if size > 0 {
		s += fmt.Sprintf(" (%.0f%% of %s)", float64(off)*100/float64(size), sizeText(size))
	}
	return s
}

// sizeText renders bytes in binary units: "192 KiB", "1.5 GiB".
func sizeText(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	v := float64(n) / float64(div)
	if v == float64(int64(v)) {
		return fmt.Sprintf("%d %ciB", int64(v), "KMGTPE"[exp])
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGTPE"[exp])
}
