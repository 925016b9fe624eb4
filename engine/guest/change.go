package guest

import (
	"crypto/sha256"
	"encoding/hex"
	"unicode/utf8"
)

// Change is one change made (or, in a dry run, that would be made) to a
// guest: every fix reports its work this way.
type Change struct {
	Fix    string `json:"fix"`
	Action string `json:"action"` // modified, created, deleted, command
	Path   string `json:"path,omitempty"`
	Reason string `json:"reason"`
	// Before and After hold a text file's content; binary or large files
	// are described by their checksums instead.
	Before       string `json:"before,omitempty"`
	After        string `json:"after,omitempty"`
	BeforeSHA256 string `json:"before_sha256,omitempty"`
	AfterSHA256  string `json:"after_sha256,omitempty"`
	Command      string `json:"command,omitempty"`
	Output       string `json:"output,omitempty"`
}

// maxInline is the largest file content kept inline in a Change.
const maxInline = 64 << 10

// Describe fills Before/After for text, or checksums for binary content.
func (c *Change) Describe(before, after []byte, existed, exists bool) {
	text := func(b []byte) bool { return len(b) <= maxInline && utf8.Valid(b) }
	if existed {
		c.BeforeSHA256 = sum(before)
		if text(before) {
			c.Before = string(before)
		}
	}
	if exists {
		c.AfterSHA256 = sum(after)
		if text(after) {
			c.After = string(after)
		}
	}
}

// SHA256 is the hex SHA-256 of b, as a Change records it.
func SHA256(b []byte) string { return sum(b) }

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}
