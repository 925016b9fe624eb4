// Package vmdk reads VMware virtual disk metadata: the text descriptor and
// the headers of hosted sparse (KDMV), ESX vmfsSparse (COWD) and seSparse
// extents. It never reads guest data; it only checks that the metadata is
// well formed and that every table and grain it references lies inside its
// file, so that a truncated or hostile disk is refused before qemu sees it.
//
// govmomi's vmdk.ParseDescriptor is lenient by design (it ignores
// parentFileNameHint and most validation), so this parser is our own.
package vmdk

import (
	"bytes"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// NoParent is the parentCID of a disk without a parent.
const NoParent uint32 = 0xffffffff

// MaxDescriptorSize bounds how much text is accepted as a descriptor.
// Real descriptors are a few hundred bytes; qemu reads at most 1 MiB.
const MaxDescriptorSize = 1 << 20

// maxSectors bounds a disk at 64 TiB, above the largest VMDK (62 TiB).
const maxSectors = 1 << 37

// maxFilename matches qemu's extent name buffer (512 bytes with NUL).
const maxFilename = 511

// Extent types.
const (
	ExtentFlat       = "FLAT"
	ExtentSparse     = "SPARSE"
	ExtentZero       = "ZERO"
	ExtentVMFS       = "VMFS"
	ExtentVMFSSparse = "VMFSSPARSE"
	ExtentVMFSRDM    = "VMFSRDM"
	ExtentVMFSRaw    = "VMFSRAW"
	ExtentSESparse   = "SESPARSE"
)

// Extent is one extent line: access, size in sectors, type, file and, for
// FLAT extents, the offset in sectors into the file.
type Extent struct {
	Access   string
	Sectors  int64
	Type     string
	Filename string
	Offset   int64
}

// Descriptor is a parsed VMDK text descriptor.
type Descriptor struct {
	Version            int
	Encoding           string
	CID                uint32
	ParentCID          uint32
	CreateType         string
	ParentFileNameHint string
	Extents            []Extent
	// DDB holds the ddb.* disk database entries, unquoted.
	DDB map[string]string
	// Other holds any other header keys, as written (values unquoted).
	Other map[string]string
}

// SyntaxError describes why a descriptor was rejected, with its line.
type SyntaxError struct {
	Line int // 1-based; 0 when the problem is not tied to a line
	Msg  string
}

func (e *SyntaxError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
	}
	return e.Msg
}

func syntaxErr(line int, format string, args ...any) error {
	return &SyntaxError{Line: line, Msg: fmt.Sprintf(format, args...)}
}

// createTypes maps every createType VMware documents to the extent types it
// may contain. An empty set means the type is recognised but not supported.
var createTypes = map[string][]string{
	"monolithicSparse":            {ExtentSparse},
	"streamOptimized":             {ExtentSparse},
	"twoGbMaxExtentSparse":        {ExtentSparse},
	"monolithicFlat":              {ExtentFlat},
	"twoGbMaxExtentFlat":          {ExtentFlat},
	"vmfs":                        {ExtentVMFS, ExtentFlat},
	"vmfsThin":                    {ExtentVMFS, ExtentFlat},
	"vmfsPreallocated":            {ExtentVMFS, ExtentFlat},
	"vmfsEagerZeroedThick":        {ExtentVMFS, ExtentFlat},
	"vmfsSparse":                  {ExtentVMFSSparse},
	"seSparse":                    {ExtentSESparse},
	"vmfsRaw":                     nil,
	"vmfsRawDeviceMap":            nil,
	"vmfsPassthroughRawDeviceMap": nil,
	"fullDevice":                  nil,
	"partitionedDevice":           nil,
	"vsanSparse":                  nil,
	"custom":                      nil,
}

// SupportedCreateTypes lists the createTypes vmconv converts.
func SupportedCreateTypes() []string {
	var out []string
	for k, v := range createTypes {
		if len(v) > 0 {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// IsSupportedCreateType reports whether vmconv can convert the createType.
func IsSupportedCreateType(ct string) bool { return len(createTypes[ct]) > 0 }

// LooksLikeDescriptor reports whether data is plausibly a text descriptor:
// readable text whose first setting is version= or which has a createType.
func LooksLikeDescriptor(data []byte) bool {
	if len(data) == 0 || len(data) > MaxDescriptorSize {
		return false
	}
	data = cString(data)
	if !utf8.Valid(data) {
		return false
	}
	for _, raw := range strings.Split(string(data), "\n") {
		line := strings.TrimSpace(raw)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		return strings.HasPrefix(line, "version=") || strings.HasPrefix(line, "version ")
	}
	return false
}

// cString cuts data at its first NUL. VMware and qemu treat descriptors as
// C strings, and qemu's CID update writes its whole buffer back, leaving
// stale bytes of the old text after the new terminator.
func cString(data []byte) []byte {
	if i := bytes.IndexByte(data, 0); i >= 0 {
		return data[:i]
	}
	return data
}

// ParseDescriptor parses and validates a text descriptor. The text ends at
// the first NUL: embedded descriptors are NUL-padded, and whatever follows
// the terminator is not part of the descriptor.
func ParseDescriptor(data []byte) (*Descriptor, error) {
	if len(data) > MaxDescriptorSize {
		return nil, syntaxErr(0, "descriptor is %d bytes, more than the %d allowed", len(data), MaxDescriptorSize)
	}
	data = cString(data)
	if !utf8.Valid(data) {
		return nil, syntaxErr(0, "descriptor is not valid UTF-8 text")
	}
	d := &Descriptor{DDB: map[string]string{}, Other: map[string]string{}}
	seen := map[string]int{}
	for n, raw := range strings.Split(string(data), "\n") {
		lineNo := n + 1
		line := strings.TrimSpace(strings.TrimSuffix(raw, "\r"))
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		for _, r := range line {
			if r < 0x20 && r != '\t' {
				return nil, syntaxErr(lineNo, "control character %q in line", r)
			}
		}
		if isExtentLine(line) {
			ext, err := parseExtent(line)
			if err != nil {
				return nil, syntaxErr(lineNo, "%v", err)
			}
			d.Extents = append(d.Extents, ext)
			continue
		}
		key, val, quoted, err := parseSetting(line)
		if err != nil {
			return nil, syntaxErr(lineNo, "%v", err)
		}
		if prev, dup := seen[key]; dup {
			return nil, syntaxErr(lineNo, "%s is set twice (first on line %d)", key, prev)
		}
		seen[key] = lineNo
		if err := d.set(key, val, quoted); err != nil {
			return nil, syntaxErr(lineNo, "%v", err)
		}
	}
	for _, k := range []string{"version", "CID", "parentCID", "createType"} {
		if _, ok := seen[k]; !ok {
			return nil, syntaxErr(0, "required setting %s is missing", k)
		}
	}
	if err := d.validate(); err != nil {
		return nil, err
	}
	return d, nil
}

func isExtentLine(line string) bool {
	for _, a := range []string{"RW ", "RDONLY ", "NOACCESS ", "RW\t", "RDONLY\t", "NOACCESS\t"} {
		if strings.HasPrefix(line, a) {
			return true
		}
	}
	return false
}

// parseExtent parses `ACCESS SECTORS TYPE ["FILE" [OFFSET]]`.
func parseExtent(line string) (Extent, error) {
	var e Extent
	fields := strings.Fields(line)
	if len(fields) < 3 {
		return e, fmt.Errorf("extent line needs access, size and type: %q", line)
	}
	e.Access = fields[0]
	sectors, err := strconv.ParseInt(fields[1], 10, 64)
	if err != nil || sectors <= 0 {
		return e, fmt.Errorf("extent size %q is not a positive number of sectors", fields[1])
	}
	if sectors > 1<<40 {
		return e, fmt.Errorf("extent size %d sectors is beyond any VMDK", sectors)
	}
	e.Sectors = sectors
	e.Type = fields[2]
	switch e.Type {
	case ExtentFlat, ExtentSparse, ExtentZero, ExtentVMFS, ExtentVMFSSparse, ExtentVMFSRDM, ExtentVMFSRaw, ExtentSESparse:
	default:
		return e, fmt.Errorf("unknown extent type %q", e.Type)
	}
	// The file name is the quoted text after the type; it may contain spaces.
	rest := strings.TrimSpace(line[strings.Index(line, e.Type)+len(e.Type):])
	if e.Type == ExtentZero {
		if rest != "" {
			return e, fmt.Errorf("ZERO extent takes no file name")
		}
		return e, nil
	}
	if !strings.HasPrefix(rest, `"`) {
		return e, fmt.Errorf("extent file name must be quoted")
	}
	end := strings.IndexByte(rest[1:], '"')
	if end < 0 {
		return e, fmt.Errorf("extent file name has no closing quote")
	}
	e.Filename = rest[1 : 1+end]
	if e.Filename == "" {
		return e, fmt.Errorf("extent file name is empty")
	}
	if len(e.Filename) > maxFilename {
		return e, fmt.Errorf("extent file name is longer than %d bytes", maxFilename)
	}
	tail := strings.TrimSpace(rest[2+end:])
	switch {
	case e.Type == ExtentFlat:
		if tail == "" {
			return e, fmt.Errorf("FLAT extent needs an offset")
		}
		off, err := strconv.ParseInt(tail, 10, 64)
		if err != nil || off < 0 {
			return e, fmt.Errorf("FLAT extent offset %q is not a sector number", tail)
		}
		if off > maxSectors {
			return e, fmt.Errorf("FLAT extent offset %d sectors is beyond any VMDK", off)
		}
		e.Offset = off
	case e.Type == ExtentVMFS && tail != "":
		off, err := strconv.ParseInt(tail, 10, 64)
		if err != nil || off != 0 {
			return e, fmt.Errorf("VMFS extent offset must be 0, got %q", tail)
		}
	case tail != "":
		return e, fmt.Errorf("unexpected text %q after the %s extent file name", tail, e.Type)
	}
	return e, nil
}

// parseSetting parses `key = value` or `key = "value"`.
func parseSetting(line string) (key, val string, quoted bool, err error) {
	eq := strings.IndexByte(line, '=')
	if eq <= 0 {
		return "", "", false, fmt.Errorf("expected key=value, got %q", line)
	}
	key = strings.TrimSpace(line[:eq])
	for _, r := range key {
		if !(r == '.' || r == '_' || r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return "", "", false, fmt.Errorf("invalid character %q in key %q", r, key)
		}
	}
	val = strings.TrimSpace(line[eq+1:])
	if strings.HasPrefix(val, `"`) {
		if len(val) < 2 || !strings.HasSuffix(val, `"`) {
			return "", "", false, fmt.Errorf("value of %s has no closing quote", key)
		}
		val = val[1 : len(val)-1]
		if strings.ContainsRune(val, '"') {
			return "", "", false, fmt.Errorf("value of %s contains a quote", key)
		}
		return key, val, true, nil
	}
	if strings.ContainsAny(val, "\" \t") {
		return "", "", false, fmt.Errorf("unquoted value of %s contains spaces or quotes", key)
	}
	return key, val, false, nil
}

func parseCID(s string) (uint32, error) {
	if len(s) == 0 || len(s) > 8 {
		return 0, fmt.Errorf("%q is not an 8-digit hexadecimal CID", s)
	}
	v, err := strconv.ParseUint(s, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("%q is not a hexadecimal CID", s)
	}
	return uint32(v), nil
}

func (d *Descriptor) set(key, val string, quoted bool) error {
	switch {
	case key == "version":
		v, err := strconv.Atoi(val)
		if err != nil || v < 1 || v > 3 {
			return fmt.Errorf("version %q is not 1, 2 or 3", val)
		}
		d.Version = v
	case key == "CID":
		c, err := parseCID(val)
		if err != nil {
			return err
		}
		d.CID = c
	case key == "parentCID":
		c, err := parseCID(val)
		if err != nil {
			return err
		}
		d.ParentCID = c
	case key == "createType":
		if !quoted {
			return fmt.Errorf("createType must be quoted")
		}
		if _, ok := createTypes[val]; !ok {
			return fmt.Errorf("unknown createType %q", val)
		}
		d.CreateType = val
	case key == "parentFileNameHint":
		if !quoted {
			return fmt.Errorf("parentFileNameHint must be quoted")
		}
		if val == "" {
			return fmt.Errorf("parentFileNameHint is empty")
		}
		if len(val) > maxFilename {
			return fmt.Errorf("parentFileNameHint is longer than %d bytes", maxFilename)
		}
		d.ParentFileNameHint = val
	case key == "encoding":
		d.Encoding = val
	case strings.HasPrefix(key, "ddb."):
		d.DDB[key] = val
	default:
		d.Other[key] = val
	}
	return nil
}

func (d *Descriptor) validate() error {
	if len(d.Extents) == 0 {
		return syntaxErr(0, "descriptor lists no extents")
	}
	var total int64
	for _, e := range d.Extents {
		total += e.Sectors
		if total > maxSectors {
			return syntaxErr(0, "the extents add up to more than %d TiB", maxSectors>>31)
		}
	}
	hasParent := d.ParentCID != NoParent
	if hasParent && d.ParentFileNameHint == "" {
		return syntaxErr(0, "parentCID is %08x but there is no parentFileNameHint naming the parent", d.ParentCID)
	}
	if !hasParent && d.ParentFileNameHint != "" {
		return syntaxErr(0, "parentFileNameHint %q is set but parentCID is ffffffff (no parent)", d.ParentFileNameHint)
	}
	allowed := createTypes[d.CreateType]
	if allowed == nil {
		// Recognised but unsupported types keep whatever extents they have;
		// the caller reports them as unsupported.
		return nil
	}
	for i, e := range d.Extents {
		ok := false
		for _, a := range allowed {
			ok = ok || e.Type == a
		}
		if !ok {
			return syntaxErr(0, "extent %d has type %s, which a %s disk cannot contain", i+1, e.Type, d.CreateType)
		}
	}
	if (d.CreateType == "monolithicSparse" || d.CreateType == "streamOptimized") && len(d.Extents) != 1 {
		return syntaxErr(0, "a %s disk has exactly one extent, this one lists %d", d.CreateType, len(d.Extents))
	}
	return nil
}

// Capacity is the disk size in bytes: the sum of the extents.
func (d *Descriptor) Capacity() int64 {
	var s int64
	for _, e := range d.Extents {
		s += e.Sectors
	}
	return s * 512
}

// HasParent reports whether the disk is a snapshot layer over a parent.
func (d *Descriptor) HasParent() bool { return d.ParentCID != NoParent }

// Marshal writes the descriptor in canonical form. The CID line precedes
// parentCID and no comment mentions either, because qemu finds them with a
// plain substring search.
func (d *Descriptor) Marshal() []byte {
	var b bytes.Buffer
	b.WriteString("# Disk DescriptorFile\n")
	fmt.Fprintf(&b, "version=%d\n", d.Version)
	if d.Encoding != "" {
		fmt.Fprintf(&b, "encoding=%q\n", d.Encoding)
	}
	fmt.Fprintf(&b, "CID=%08x\n", d.CID)
	fmt.Fprintf(&b, "parentCID=%08x\n", d.ParentCID)
	keys := make([]string, 0, len(d.Other))
	for k := range d.Other {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=\"%s\"\n", k, d.Other[k])
	}
	fmt.Fprintf(&b, "createType=\"%s\"\n", d.CreateType)
	if d.ParentFileNameHint != "" {
		fmt.Fprintf(&b, "parentFileNameHint=\"%s\"\n", d.ParentFileNameHint)
	}
	b.WriteString("\n# Extent description\n")
	for _, e := range d.Extents {
		switch e.Type {
		case ExtentZero:
			fmt.Fprintf(&b, "%s %d %s\n", e.Access, e.Sectors, e.Type)
		case ExtentFlat:
			fmt.Fprintf(&b, "%s %d %s \"%s\" %d\n", e.Access, e.Sectors, e.Type, e.Filename, e.Offset)
		default:
			fmt.Fprintf(&b, "%s %d %s \"%s\"\n", e.Access, e.Sectors, e.Type, e.Filename)
		}
	}
	if len(d.DDB) > 0 {
		b.WriteString("\n# The Disk Data Base\n#DDB\n\n")
		keys = keys[:0]
		for k := range d.DDB {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(&b, "%s = \"%s\"\n", k, d.DDB[k])
		}
	}
	return b.Bytes()
}
