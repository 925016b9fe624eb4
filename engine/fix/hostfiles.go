package fix

import (
	"os"
	"path/filepath"
)

// readHostFile reads a driver file from the host's virtio-win tree.
func readHostFile(p string) ([]byte, error) { return os.ReadFile(p) }

// hostDir reads the regular files of a driver folder on the host.
func hostDir(dir string) (map[string][]byte, error) {
	es, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	for _, e := range es {
		if e.Type().IsRegular() {
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				return nil, err
			}
			out[e.Name()] = b
		}
	}
	return out, nil
}
