// Package fault defines the engine's typed error. Every failure a user can
// cause or fix (bad input, a full disk, a changed source) is a *fault.Error
// with a Code the provider maps to a diagnostic, the file involved and a hint
// saying what to do. Anything else is a bug or an environment problem and is
// reported with Code Internal.
package fault

import (
	"errors"
	"fmt"
	"strings"
)

// Code classifies a failure. Codes are stable: the provider keys its
// diagnostic summaries on them and tests assert them.
type Code string

const (
	Internal              Code = "internal"
	SourceMissing         Code = "source_missing"
	SourceUnreadable      Code = "source_unreadable"
	UnknownFormat         Code = "unknown_format"
	UnsupportedFormat     Code = "unsupported_format"
	CorruptImage          Code = "corrupt_image"
	TruncatedImage        Code = "truncated_image"
	CorruptDescriptor     Code = "corrupt_descriptor"
	ChainParentMissing    Code = "chain_parent_missing"
	ChainLoop             Code = "chain_loop"
	ChainCIDMismatch      Code = "chain_cid_mismatch"
	PathOutsideSource     Code = "path_outside_source"
	SourceChanged         Code = "source_changed"
	OutputDirMissing      Code = "output_dir_missing"
	OutputIsSource        Code = "output_is_source"
	OutputExists          Code = "output_exists"
	OutputLocked          Code = "output_locked"
	OutputNotWritable     Code = "output_not_writable"
	NoSpace               Code = "no_space"
	ToolMissing           Code = "tool_missing"
	ToolFailed            Code = "tool_failed"
	Cancelled             Code = "cancelled"
	InvalidRequest        Code = "invalid_request"
	NoOperatingSystem     Code = "no_operating_system"
	MultipleOSes          Code = "multiple_operating_systems"
	EncryptedGuest        Code = "encrypted_guest"
	InspectionFailed      Code = "inspection_failed"
	FixFailed             Code = "fix_failed"
	BootTestFailed        Code = "boot_test_failed"
	GuestUnsupported      Code = "guest_unsupported"
	DriversMissing        Code = "drivers_missing"
	BitLocker             Code = "bitlocker"
	HypervisorFailed      Code = "hypervisor_failed"
	HypervisorUnreachable Code = "hypervisor_unreachable"
	DomainExists          Code = "domain_exists"
	FirmwareMissing       Code = "firmware_missing"
	FetchFailed           Code = "fetch_failed"
	ChecksumMismatch      Code = "checksum_mismatch"
	HostKeyMismatch       Code = "host_key_mismatch"
	AuthFailed            Code = "auth_failed"
	HostileArchive        Code = "hostile_archive"
	DiskInUse             Code = "disk_in_use"
	BootPhases            Code = "boot_phases"
	RemoteNotFound        Code = "remote_not_found"
	DiskUnreachable       Code = "disk_unreachable"
	BootTestImpossible    Code = "boot_test_impossible"
	PoolMissing           Code = "pool_missing"
	OlderSnapshot         Code = "older_snapshot"
)

// Error is a classified failure with the facts a user needs.
type Error struct {
	Code  Code
	Stage string // pipeline stage, filled in by the engine's loop
	File  string // the file (or remote object) the problem is about
	Msg   string // what is wrong, one sentence
	Hint  string // what to do about it
	Facts []Fact // extra labelled facts (Command:, Expected:, ...)
	Err   error  // underlying cause
}

// Fact is one labelled line of a diagnostic.
type Fact struct {
	Label string
	Value string
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.Stage != "" {
		b.WriteString(e.Stage)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	if e.File != "" {
		fmt.Fprintf(&b, " (file %s)", e.File)
	}
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// New returns an error with a code, file and message.
func New(code Code, file, format string, args ...any) *Error {
	return &Error{Code: code, File: file, Msg: fmt.Sprintf(format, args...)}
}

// Wrap classifies an underlying error.
func Wrap(code Code, file string, err error, format string, args ...any) *Error {
	return &Error{Code: code, File: file, Msg: fmt.Sprintf(format, args...), Err: err}
}

// WithHint sets the hint and returns the error for chaining.
func (e *Error) WithHint(format string, args ...any) *Error {
	e.Hint = fmt.Sprintf(format, args...)
	return e
}

// WithFact appends a labelled fact.
func (e *Error) WithFact(label, value string) *Error {
	e.Facts = append(e.Facts, Fact{Label: label, Value: value})
	return e
}

// As returns the *Error in err's chain, if any.
func As(err error) (*Error, bool) {
	var fe *Error
	if errors.As(err, &fe) {
		return fe, true
	}
	return nil, false
}

// CodeOf returns the code of err, Internal for unclassified errors and ""
// for nil.
func CodeOf(err error) Code {
	if err == nil {
		return ""
	}
	if fe, ok := As(err); ok {
		return fe.Code
	}
	return Internal
}

// Is reports whether err carries the given code.
func Is(err error, code Code) bool { return CodeOf(err) == code }
