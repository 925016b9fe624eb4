// Package qemuimg is the engine's narrow interface to qemu-img, the data
// plane. Facts come from --output=json; conversions report progress parsed
// from qemu-img's \r-separated meter.
package qemuimg

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/vmconv/terraform-provider-vmconv/engine/internal/run"
)

// Tool is what the engine needs from qemu-img.
type Tool interface {
	Info(ctx context.Context, path, driver string) (*Info, error)
	Measure(ctx context.Context, src, srcDriver, outFormat string, compressed bool) (*Measure, error)
	CreateOverlay(ctx context.Context, path, backing, backingDriver string) error
	// RebaseUnsafe rewrites an overlay's backing file name and format
	// without opening either image (qemu-img rebase -u).
	RebaseUnsafe(ctx context.Context, path, backing, backingDriver string) error
	Convert(ctx context.Context, a ConvertArgs, progress func(pct float64)) error
	Check(ctx context.Context, path, driver string) (*CheckResult, error)
	// MapOwn maps one image file's own contents, its backing not opened.
	MapOwn(ctx context.Context, path, driver string) ([]MapEntry, error)
}

// Info is the subset of `qemu-img info --output=json` the engine uses.
type Info struct {
	Filename    string `json:"filename"`
	Format      string `json:"format"`
	VirtualSize int64  `json:"virtual-size"`
	ActualSize  int64  `json:"actual-size"`
	BackingFile string `json:"backing-filename"`
}

// Measure is `qemu-img measure --output=json`.
type Measure struct {
	Required       int64 `json:"required"`
	FullyAllocated int64 `json:"fully-allocated"`
}

// ConvertArgs describes one conversion.
type ConvertArgs struct {
	Src, SrcDriver string
	Dst, DstFormat string
	Compress       bool
	// Coroutines is qemu-img's -m (parallel requests), 1..16.
	Coroutines int
	// OutOfOrder allows -W (out-of-order writes) where it is safe.
	OutOfOrder bool
	// DstCache is -t (none, writeback, unsafe...). Empty leaves the default.
	DstCache string
	// SrcCache is -T.
	SrcCache string
}

// Exec runs the qemu-img binary.
type Exec struct {
	Path string // defaults to "qemu-img" on PATH
}

func (e Exec) bin() string {
	if e.Path != "" {
		return e.Path
	}
	return "qemu-img"
}

// Available reports whether the binary can be found.
func (e Exec) Available() error {
	_, err := exec.LookPath(e.bin())
	return err
}

func (e Exec) Info(ctx context.Context, path, driver string) (*Info, error) {
	args := []string{"info", "--output=json"}
	if driver != "" {
		args = append(args, "-f", driver)
	}
	out, err := run.Run(ctx, run.Cmd{Name: e.bin(), Args: append(args, path)})
	if err != nil {
		return nil, err
	}
	var in Info
	if err := json.Unmarshal(out, &in); err != nil {
		return nil, fmt.Errorf("qemu-img info: %w", err)
	}
	return &in, nil
}

func (e Exec) Measure(ctx context.Context, src, srcDriver, outFormat string, compressed bool) (*Measure, error) {
	args := []string{"measure", "--output=json", "-f", srcDriver, "-O", outFormat}
	_ = compressed // measure has no compression model; it reports the uncompressed bound
	out, err := run.Run(ctx, run.Cmd{Name: e.bin(), Args: append(args, src)})
	if err != nil {
		return nil, err
	}
	var m Measure
	if err := json.Unmarshal(out, &m); err != nil {
		return nil, fmt.Errorf("qemu-img measure: %w", err)
	}
	return &m, nil
}

func (e Exec) CreateOverlay(ctx context.Context, path, backing, backingDriver string) error {
	_, err := run.Run(ctx, run.Cmd{Name: e.bin(), Args: []string{
		"create", "-q", "-f", "qcow2", "-o", "cluster_size=65536", "-b", backing, "-F", backingDriver, path,
	}})
	return err
}

func (e Exec) RebaseUnsafe(ctx context.Context, path, backing, backingDriver string) error {
	_, err := run.Run(ctx, run.Cmd{Name: e.bin(), Args: []string{"rebase", "-u", "-f", "qcow2", "-b", backing, "-F", backingDriver, path}})
	return err
}

func (e Exec) Convert(ctx context.Context, a ConvertArgs, progress func(float64)) error {
	args := []string{"convert", "-p", "-f", a.SrcDriver, "-O", a.DstFormat}
	if a.Compress {
		args = append(args, "-c")
	}
	if a.Coroutines > 0 {
		args = append(args, "-m", strconv.Itoa(min(a.Coroutines, 16)))
	}
	if a.OutOfOrder && !a.Compress {
		args = append(args, "-W")
	}
	if a.DstCache != "" {
		args = append(args, "-t", a.DstCache)
	}
	if a.SrcCache != "" {
		args = append(args, "-T", a.SrcCache)
	}
	args = append(args, a.Src, a.Dst)
	_, err := run.Run(ctx, run.Cmd{Name: e.bin(), Args: args, Lines: func(l string) {
		if p, ok := ParseProgress(l); ok && progress != nil {
			progress(p)
		}
	}})
	return err
}

var progressRE = regexp.MustCompile(`^\(?\s*([0-9]+(?:\.[0-9]+)?)/100%\)?$`)

// ParseProgress reads one qemu-img -p meter line, e.g. "(42.17/100%)".
func ParseProgress(line string) (float64, bool) {
	m := progressRE.FindStringSubmatch(strings.TrimSpace(line))
	if m == nil {
		return 0, false
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil || v < 0 || v > 100 {
		return 0, false
	}
	return v, true
}

// CheckResult is `qemu-img check --output=json`, with the lines qemu-img
// printed about each problem (it writes them to stderr, not the JSON).
type CheckResult struct {
	Filename    string `json:"filename"`
	Format      string `json:"format"`
	CheckErrors int64  `json:"check-errors"`
	Corruptions int64  `json:"corruptions"`
	Leaks       int64  `json:"leaks"`
	// Findings are qemu-img's own descriptions ("ERROR cluster 3
	// refcount=0 reference=1"), at most maxFindings of them.
	Findings []string `json:"-"`
}

// Corrupt reports damage that makes the image read wrong data. Leaked
// clusters alone (allocated, referenced by nothing) are harmless.
func (c *CheckResult) Corrupt() bool { return c.Corruptions > 0 || c.CheckErrors > 0 }

// ErrCheckUnsupported is returned when the driver has no check (qemu-img
// exits 63): raw and vpc, for instance.
var ErrCheckUnsupported = errors.New("qemu-img check: the format does not support checks")

const maxFindings = 20

// checkNoBacking lists the drivers whose images name a backing file or
// parent; Check pins "backing": null so qemu opens only the one file.
var checkNoBacking = map[string]bool{"qcow2": true, "vmdk": true}

// CheckSpec is the json: filename Check passes qemu-img: the driver pinned
// (no probing), the file opened by the file protocol only, and for drivers
// with backing files, "backing": null, so qemu reads this one file and
// never follows a name written inside it.
func CheckSpec(path, driver string) (string, error) {
	if !filepath.IsAbs(path) {
		return "", fmt.Errorf("qemu-img check: %q is not an absolute path", path)
	}
	spec := map[string]any{"driver": driver, "file": map[string]any{"driver": "file", "filename": path}}
	if checkNoBacking[driver] {
		spec["backing"] = nil
	}
	b, err := json.Marshal(spec)
	if err != nil {
		return "", err
	}
	return "json:" + string(b), nil
}

// Check runs `qemu-img check` read-only on one image file. Exit status 2
// (corruption) and 3 (leaks only) are results, not errors.
func (e Exec) Check(ctx context.Context, path, driver string) (*CheckResult, error) {
	spec, err := CheckSpec(path, driver)
	if err != nil {
		return nil, err
	}
	var out strings.Builder
	_, err = run.Run(ctx, run.Cmd{Name: e.bin(), Args: []string{"check", "--output=json", "-f", driver, spec},
		Lines: func(l string) { out.WriteString(l + "\n") }})
	var stderr string
	if err != nil {
		var re *run.Error
		if !errors.As(err, &re) {
			return nil, err
		}
		switch re.ExitCode {
		case 2, 3:
			stderr = re.Stderr
		case 63:
			return nil, ErrCheckUnsupported
		default:
			return nil, err
		}
	}
	var c CheckResult
	if err := json.Unmarshal([]byte(out.String()), &c); err != nil {
		return nil, fmt.Errorf("qemu-img check: %w", err)
	}
	c.Findings = parseFindings(stderr)
	return &c, nil
}

// parseFindings keeps the lines of qemu-img check's stderr that describe a
// problem, dropping its summary and advice.
func parseFindings(stderr string) []string {
	var out []string
	for _, l := range strings.Split(stderr, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.Contains(l, "were found on the image") || strings.HasPrefix(l, "Data may be corrupted") ||
			strings.HasPrefix(l, "This means waste of disk space") {
			continue
		}
		if len(out) == maxFindings {
			out = append(out, "(more not shown)")
			break
		}
		out = append(out, l)
	}
	return out
}

// MapEntry is one range of `qemu-img map --output=json`.
type MapEntry struct {
	Start  int64 `json:"start"`
	Length int64 `json:"length"`
	Depth  int   `json:"depth"`
	// Present is nil where qemu-img is too old to say (before 6.1): true
	// where this image defines the range's content, zero clusters and
	// discards included, which it does not count as allocated.
	Present *bool `json:"present"`
	Zero    bool  `json:"zero"`
	Data    bool  `json:"data"`
}

// MapOwn runs `qemu-img map` on one image file with its backing pinned to
// nothing (see CheckSpec), so only what that file itself holds is listed.
func (e Exec) MapOwn(ctx context.Context, path, driver string) ([]MapEntry, error) {
	spec, err := CheckSpec(path, driver)
	if err != nil {
		return nil, err
	}
	var out strings.Builder
	if _, err := run.Run(ctx, run.Cmd{Name: e.bin(), Args: []string{"map", "--output=json", "-f", driver, spec},
		Lines: func(l string) { out.WriteString(l + "\n") }}); err != nil {
		return nil, err
	}
	var m []MapEntry
	if err := json.Unmarshal([]byte(out.String()), &m); err != nil {
		return nil, fmt.Errorf("qemu-img map: %w", err)
	}
	return m, nil
}
