package output

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
)

// Hold records that a domain runs on an overlay backed by an output, so the
// output must not be deleted or rewritten while the domain exists.
type Hold struct {
	Domain  string `json:"domain"`
	UUID    string `json:"uuid,omitempty"`
	URI     string `json:"uri,omitempty"`
	Overlay string `json:"overlay"`
}

func holdsPath(out string) string { return out + holdsSuffix }

func readHolds(out string) ([]Hold, error) {
	b, err := os.ReadFile(holdsPath(out))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var hs []Hold
	return hs, json.Unmarshal(b, &hs)
}

func writeHolds(out string, hs []Hold) error {
	if len(hs) == 0 {
		err := os.Remove(holdsPath(out))
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	b, _ := json.MarshalIndent(hs, "", "  ")
	return WriteAtomic(holdsPath(out), b, 0o644)
}

// Holds lists the live holds on an output. A hold whose overlay is gone
// (its domain was removed outside Terraform) is dropped.
func Holds(out string) ([]Hold, error) {
	hs, err := readHolds(out)
	if err != nil {
		return nil, err
	}
	var live []Hold
	for _, h := range hs {
		if _, err := os.Stat(h.Overlay); err == nil {
			live = append(live, h)
		}
	}
	if len(live) != len(hs) {
		writeHolds(out, live)
	}
	return live, nil
}

// AddHold records a hold (replacing one for the same overlay).
func AddHold(out string, h Hold) error {
	hs, err := readHolds(out)
	if err != nil {
		return err
	}
	var keep []Hold
	for _, x := range hs {
		if x.Overlay != h.Overlay {
			keep = append(keep, x)
		}
	}
	return writeHolds(out, append(keep, h))
}

// RemoveHold drops the hold of an overlay.
func RemoveHold(out, overlay string) error {
	hs, err := readHolds(out)
	if err != nil {
		return err
	}
	var keep []Hold
	for _, x := range hs {
		if x.Overlay != overlay {
			keep = append(keep, x)
		}
	}
	return writeHolds(out, keep)
}
