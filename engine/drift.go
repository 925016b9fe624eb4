package engine

import (
	"errors"
	"io/fs"

	"github.com/vmconv/terraform-provider-vmconv/engine/fingerprint"
)

// Drift says whether an output still is what was written.
type Drift string

const (
	DriftNone    Drift = "none"
	DriftMissing Drift = "missing"
	DriftChanged Drift = "changed"
)

// CheckOutput compares the output at path with the stamp taken when it was
// written: size, modification time and sampled content. It reads about
// 4 MiB whatever the disk's size, so it is cheap enough for every refresh.
func CheckOutput(path string, want fingerprint.Stamp) (Drift, error) {
	got, err := fingerprint.Of(path)
	if errors.Is(err, fs.ErrNotExist) {
		return DriftMissing, nil
	}
	if err != nil {
		return "", err
	}
	if !got.Equal(want) {
		return DriftChanged, nil
	}
	return DriftNone, nil
}
