package engine

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"time"

	"github.com/vmconv/terraform-provider-vmconv/engine/output"
)

// PlanRecord remembers what was last planned for an output path, so a
// caller can tell the user that the source changed between two plans (for
// instance between `terraform plan` and `terraform apply`).
type PlanRecord struct {
	Fingerprint string    `json:"fingerprint"`
	Chain       []string  `json:"chain"`
	At          time.Time `json:"at"`
}

func (e *Engine) recordPath(outputPath string) string {
	h := sha256.Sum256([]byte(outputPath))
	return filepath.Join(e.cfg.CacheDir, "plans", hex.EncodeToString(h[:12])+".json")
}

// LastPlanned returns the record for outputPath, if any.
func (e *Engine) LastPlanned(outputPath string) (*PlanRecord, bool) {
	b, err := os.ReadFile(e.recordPath(outputPath))
	if err != nil {
		return nil, false
	}
	var r PlanRecord
	if json.Unmarshal(b, &r) != nil {
		return nil, false
	}
	return &r, true
}

// RecordPlanned stores p as the last plan for its output path.
func (e *Engine) RecordPlanned(p *Plan) error {
	path := e.recordPath(p.Output.Path)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	b, _ := json.Marshal(PlanRecord{Fingerprint: p.Source.Fingerprint, Chain: p.Source.ChainPaths(), At: time.Now().UTC()})
	return output.WriteAtomic(path, b, 0o644)
}
