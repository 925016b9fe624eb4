// Package vmx reads a VMware VM's configuration file (.vmx): its disks by
// controller and unit, its NICs, memory, vCPUs, firmware and guest OS.
// govmomi has no reader for the file (it speaks to vSphere's API, which
// parses .vmx files server-side), so this is a strict one of our own.
//
// The format is lines of `key = "value"`, with # comments. Keys are
// case-insensitive to VMware; values are quoted and escape bytes as |XX
// (hexadecimal). The parser is strict where VMware is lenient, because a
// .vmx is input vmconv did not write: a duplicate key (in any case), a line
// it cannot read, a value that is not valid UTF-8, or more keys, disks or
// bytes than any real VM has are refused with the line number, never
// guessed at. Which files the disks name is only reported here; the caller
// confines them to the VM's folder.
package vmx

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Bounds no real .vmx reaches: VMware's largest configurations have a few
// thousand keys, and a VM has at most 4 SCSI controllers of 64 disks, 4
// SATA of 30, 4 NVMe of 64 and 4 IDE disks.
const (
	MaxSize  = 1 << 20
	MaxKeys  = 20000
	MaxDisks = 512
	MaxNICs  = 10
	maxLine  = 64 << 10
)

// Error is a .vmx that cannot be read, with the line it is about.
type Error struct {
	Line int // 1-based; 0 when the error is about the whole file
	Msg  string
}

func (e *Error) Error() string {
	if e.Line == 0 {
		return e.Msg
	}
	return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
}

func errorf(line int, format string, args ...any) *Error {
	return &Error{Line: line, Msg: fmt.Sprintf(format, args...)}
}

// File is a parsed .vmx: its settings by lower-cased key.
type File struct {
	values map[string]string
	lines  map[string]int
}

// Get returns the value of key (any case) and whether it is set.
func (f *File) Get(key string) (string, bool) {
	v, ok := f.values[strings.ToLower(key)]
	return v, ok
}

// Line returns the line a key was set on, for messages.
func (f *File) Line(key string) int { return f.lines[strings.ToLower(key)] }

// Len is how many keys the file sets.
func (f *File) Len() int { return len(f.values) }

// Parse reads a .vmx.
func Parse(data []byte) (*File, error) {
	if len(data) > MaxSize {
		return nil, errorf(0, "the file is %d bytes, more than the %d a VM configuration ever holds", len(data), MaxSize)
	}
	if bytes.IndexByte(data, 0) >= 0 {
		return nil, errorf(0, "the file holds NUL bytes: it is not a VM configuration")
	}
	f := &File{values: map[string]string{}, lines: map[string]int{}}
	for i, raw := range bytes.Split(data, []byte("\n")) {
		n := i + 1
		if len(raw) > maxLine {
			return nil, errorf(n, "the line is %d bytes long", len(raw))
		}
		line := strings.TrimSpace(strings.TrimSuffix(string(raw), "\r"))
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if !utf8.ValidString(line) {
			return nil, errorf(n, "the line is not valid UTF-8 (VMware writes .vmx files in UTF-8; re-save the file as UTF-8)")
		}
		eq := strings.IndexByte(line, '=')
		if eq <= 0 {
			return nil, errorf(n, "expected key = \"value\", got %q", clip(line))
		}
		key := strings.ToLower(strings.TrimSpace(line[:eq]))
		if !validKey(key) {
			return nil, errorf(n, "%q is not a configuration key", clip(key))
		}
		val, err := unquote(strings.TrimSpace(line[eq+1:]))
		if err != nil {
			return nil, errorf(n, "%s: %v", key, err)
		}
		if prev, dup := f.lines[key]; dup {
			return nil, errorf(n, "%s is set again (first on line %d): a VM configuration sets each key once", key, prev)
		}
		if len(f.values) >= MaxKeys {
			return nil, errorf(n, "more than %d keys", MaxKeys)
		}
		f.values[key], f.lines[key] = val, n
	}
	if enc, ok := f.Get(".encoding"); ok && !strings.EqualFold(enc, "UTF-8") {
		return nil, errorf(f.Line(".encoding"), "the file declares the encoding %q; vmconv reads UTF-8 .vmx files only (re-save it in a current VMware product, which writes UTF-8)", enc)
	}
	return f, nil
}

func validKey(k string) bool {
	if k == "" || len(k) > 256 {
		return false
	}
	for _, c := range k {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', strings.ContainsRune("._:-[]", c):
		default:
			return false
		}
	}
	return true
}

// unquote reads a value: "..." with |XX escapes. VMware always quotes.
func unquote(s string) (string, error) {
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
		return "", fmt.Errorf("the value %q is not quoted", clip(s))
	}
	s = s[1 : len(s)-1]
	if !strings.ContainsAny(s, "|\"") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			return "", fmt.Errorf("an unescaped quote inside the value")
		case '|':
			if i+2 >= len(s) {
				return "", fmt.Errorf("a |XX escape is cut short")
			}
			v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
			if err != nil {
				return "", fmt.Errorf("%q is not a |XX escape", s[i:i+3])
			}
			b.WriteByte(byte(v))
			i += 2
		default:
			b.WriteByte(s[i])
		}
	}
	out := b.String()
	if !utf8.ValidString(out) {
		return "", fmt.Errorf("the escaped value is not valid UTF-8")
	}
	return out, nil
}

func clip(s string) string {
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return s
}
