package vmdk

import (
	"bytes"
	"strings"
	"testing"
)

const esxSnapshot = `# Disk DescriptorFile
version=1
encoding="UTF-8"
CID=2ba8a1e4
parentCID=6c5d6d41
isNativeSnapshot="no"
createType="seSparse"
parentFileNameHint="web.vmdk"
# Extent description
RW 83886080 SESPARSE "web-000001-sesparse.vmdk"

# The Disk Data Base
#DDB

ddb.grain = "8"
ddb.longContentID = "9c4b4e6f8ba1ad2b1c1dbd7a2ba8a1e4"
ddb.uuid = "60 00 C2 9d 5e 2f 1d 3a-9d 44 9b 12 0d 27 3a 1f"
ddb.virtualHWVersion = "19"
`

func TestParseDescriptor(t *testing.T) {
	cases := []struct {
		name, text string
		check      func(t *testing.T, d *Descriptor)
		err        string
	}{
		{name: "esx seSparse snapshot", text: esxSnapshot, check: func(t *testing.T, d *Descriptor) {
			if d.CID != 0x2ba8a1e4 || d.ParentCID != 0x6c5d6d41 || d.ParentFileNameHint != "web.vmdk" {
				t.Errorf("ids: %+v", d)
			}
			if len(d.Extents) != 1 || d.Extents[0].Type != ExtentSESparse || d.Extents[0].Sectors != 83886080 {
				t.Errorf("extents: %+v", d.Extents)
			}
			if d.Capacity() != 83886080*512 || d.DDB["ddb.grain"] != "8" || d.Other["isNativeSnapshot"] != "no" {
				t.Errorf("capacity/ddb: %d %v", d.Capacity(), d.DDB)
			}
		}},
		{name: "windows line endings and file name with spaces", text: "version=1\r\nCID=fffffffe\r\nparentCID=ffffffff\r\ncreateType=\"twoGbMaxExtentFlat\"\r\nRW 100 FLAT \"My Disk-f001.vmdk\" 0\r\nRDONLY 50 FLAT \"My Disk-f002.vmdk\" 7\r\n", check: func(t *testing.T, d *Descriptor) {
			if d.Extents[0].Filename != "My Disk-f001.vmdk" || d.Extents[1].Offset != 7 || d.Extents[1].Access != "RDONLY" {
				t.Errorf("extents: %+v", d.Extents)
			}
		}},
		{name: "embedded descriptor with NUL padding", text: "version=1\nCID=1\nparentCID=ffffffff\ncreateType=\"monolithicSparse\"\nRW 8 SPARSE \"a.vmdk\"\n\x00\x00\x00", check: func(t *testing.T, d *Descriptor) {
			if d.CID != 1 {
				t.Errorf("cid %x", d.CID)
			}
		}},
		{name: "missing createType", text: "version=1\nCID=1\nparentCID=ffffffff\nRW 8 FLAT \"a\" 0\n", err: "createType is missing"},
		{name: "duplicate key", text: "version=1\nCID=1\nCID=2\nparentCID=ffffffff\ncreateType=\"vmfs\"\nRW 8 VMFS \"a\"\n", err: "CID is set twice"},
		{name: "bad version", text: "version=7\nCID=1\nparentCID=ffffffff\ncreateType=\"vmfs\"\nRW 8 VMFS \"a\"\n", err: "version"},
		{name: "unknown createType", text: "version=1\nCID=1\nparentCID=ffffffff\ncreateType=\"floppy\"\nRW 8 VMFS \"a\"\n", err: "unknown createType"},
		{name: "extent type not allowed", text: "version=1\nCID=1\nparentCID=ffffffff\ncreateType=\"vmfsSparse\"\nRW 8 FLAT \"a\" 0\n", err: "cannot contain"},
		{name: "parent without hint", text: "version=1\nCID=1\nparentCID=12345678\ncreateType=\"vmfsSparse\"\nRW 8 VMFSSPARSE \"a\"\n", err: "no parentFileNameHint"},
		{name: "hint without parent", text: "version=1\nCID=1\nparentCID=ffffffff\ncreateType=\"vmfsSparse\"\nparentFileNameHint=\"p.vmdk\"\nRW 8 VMFSSPARSE \"a\"\n", err: "no parent"},
		{name: "unquoted extent", text: "version=1\nCID=1\nparentCID=ffffffff\ncreateType=\"vmfs\"\nRW 8 VMFS a-flat.vmdk\n", err: "must be quoted"},
		{name: "negative extent", text: "version=1\nCID=1\nparentCID=ffffffff\ncreateType=\"vmfs\"\nRW -8 VMFS \"a\"\n", err: "positive"},
		{name: "flat without offset", text: "version=1\nCID=1\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\nRW 8 FLAT \"a\"\n", err: "needs an offset"},
		{name: "no extents", text: "version=1\nCID=1\nparentCID=ffffffff\ncreateType=\"vmfs\"\n", err: "no extents"},
		{name: "text ends at the first NUL", text: "version=1\nCID=1\x00\nparentCID=ffffffff\n", err: "parentCID is missing"},
		{name: "stale bytes after the terminator (qemu CID rewrite)", text: "version=1\nCID=1\nparentCID=ffffffff\ncreateType=\"vmfs\"\nRW 8 VMFS \"a\"\n\x00ol\"\n", check: func(t *testing.T, d *Descriptor) {
			if len(d.Extents) != 1 {
				t.Errorf("extents %+v", d.Extents)
			}
		}},
		{name: "invalid utf8", text: "version=1\nCID=\xff\xfe\n", err: "UTF-8"},
		{name: "quote in value", text: "version=1\nCID=1\nparentCID=ffffffff\ncreateType=\"vm\"fs\"\nRW 8 VMFS \"a\"\n", err: "quote"},
		{name: "two extents in monolithicSparse", text: "version=1\nCID=1\nparentCID=ffffffff\ncreateType=\"monolithicSparse\"\nRW 8 SPARSE \"a\"\nRW 8 SPARSE \"b\"\n", err: "exactly one extent"},
		{name: "trailing junk after extent", text: "version=1\nCID=1\nparentCID=ffffffff\ncreateType=\"vmfsSparse\"\nRW 8 VMFSSPARSE \"a\" 12\n", err: "unexpected text"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, err := ParseDescriptor([]byte(tc.text))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, d)
		})
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	d, err := ParseDescriptor([]byte(esxSnapshot))
	if err != nil {
		t.Fatal(err)
	}
	again, err := ParseDescriptor(d.Marshal())
	if err != nil {
		t.Fatalf("re-parse: %v\n%s", err, d.Marshal())
	}
	if !bytes.Equal(again.Marshal(), d.Marshal()) {
		t.Fatalf("round trip differs:\n%s\n---\n%s", d.Marshal(), again.Marshal())
	}
	// qemu finds CID with a substring search: the first "CID" must be the
	// CID line, and "parentCID" must come after it.
	m := string(d.Marshal())
	if i := strings.Index(m, "CID"); !strings.HasPrefix(m[i-0:], "CID=2ba8a1e4") {
		t.Errorf("first CID occurrence is not the CID line: %q", m[i:i+20])
	}
}

func TestLooksLikeDescriptor(t *testing.T) {
	for text, want := range map[string]bool{
		esxSnapshot:                    true,
		"\n\n# c\nversion=1\n":         true,
		"config.version = \"8\"\n":     false,
		"KDMV\x01\x00\x00\x00":         false,
		"":                             false,
		"#!/bin/sh\nversion=1\n":       true, // a comment line is a comment
		"hello\nversion=1\n":           false,
		"version=1\n\x00\x00garbage\n": true,
		"\x00version=1\n":              false,
	} {
		if got := LooksLikeDescriptor([]byte(text)); got != want {
			t.Errorf("LooksLikeDescriptor(%q) = %v, want %v", text, got, want)
		}
	}
}

// FuzzParseDescriptor checks the parser never panics and that whatever it
// accepts survives a Marshal/Parse round trip unchanged. The corpus lives
// in testdata/fuzz/FuzzParseDescriptor.
func FuzzParseDescriptor(f *testing.F) {
	f.Add([]byte(esxSnapshot))
	f.Add([]byte("version=1\nCID=1\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\nRW 8 FLAT \"a b.vmdk\" 0\n"))
	f.Add([]byte("version=3\r\nCID=fffffffe\r\nparentCID=ffffffff\r\ncreateType=\"twoGbMaxExtentSparse\"\r\nRW 4192256 SPARSE \"x-s001.vmdk\"\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := ParseDescriptor(data)
		if err != nil {
			return
		}
		m := d.Marshal()
		again, err := ParseDescriptor(m)
		if err != nil {
			t.Fatalf("accepted input does not re-parse after Marshal: %v\n%q", err, m)
		}
		if !bytes.Equal(again.Marshal(), m) {
			t.Fatalf("Marshal is not stable:\n%q\n%q", m, again.Marshal())
		}
		if d.Capacity() <= 0 {
			t.Fatalf("accepted a descriptor with capacity %d", d.Capacity())
		}
	})
}
