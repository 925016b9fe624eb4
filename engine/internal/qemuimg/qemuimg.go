// Package qemuimg is the engine's narrow interface to qemu-img, the data
// plane. Facts come from --output=json; conversions report progress parsed
// from qemu-img's \r-separated meter.
package qemuimg

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
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
	Convert(ctx context.Context, a ConvertArgs, progress func(pct float64)) error
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
