package source

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
)

func TestNormalize(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec Spec
		code fault.Code
	}{
		{"nothing", Spec{}, fault.InvalidRequest},
		{"two kinds", Spec{Path: "/a.vmdk", OVA: "/b.ova"}, fault.InvalidRequest},
		{"not http", Spec{URL: &URL{Href: "ftp://host/disk.vmdk"}}, fault.InvalidRequest},
		{"no host", Spec{URL: &URL{Href: "https:///disk.vmdk"}}, fault.InvalidRequest},
		{"path", Spec{Path: "/a.vmdk"}, ""},
		{"url", Spec{URL: &URL{Href: "https://user:pw@host/d/disk.vmdk?token=x"}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.spec.Normalize()
			if fault.CodeOf(err) != tc.code && !(tc.code == "" && err == nil) {
				t.Fatalf("got %v, want %q", err, tc.code)
			}
		})
	}
	u := &URL{Href: "https://user:pw@host/d/disk.vmdk?token=secret"}
	s, err := Spec{URL: u}.Normalize()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(s.URL.Shown, "secret") || strings.Contains(s.URL.Shown, "pw") || !strings.Contains(s.URL.Shown, "host/d/disk.vmdk") {
		t.Errorf("shown URL %q", s.URL.Shown)
	}
	if u.Shown != "" {
		t.Error("Normalize changed the caller's URL")
	}
	s, _ = Spec{OVA: "rel.ova"}.Normalize()
	if !filepath.IsAbs(s.OVA) {
		t.Errorf("OVA path %q is not absolute", s.OVA)
	}
}

// TestSelect: every kind a Spec can name has its source, chosen in one
// place, and each describes itself without secrets.
func TestSelect(t *testing.T) {
	env := Env{CacheDir: t.TempDir()}
	u := &URL{Href: "https://h/x/disk.vmdk?sig=secret", Shown: "https://h/x/disk.vmdk"}
	for _, tc := range []struct {
		spec  Spec
		kind  string
		shown string
		sized bool // the FETCH reason gives the size the remote end reported
	}{
		{Spec{Path: "/d/web.vmdk"}, "path", "/d/web.vmdk", false},
		{Spec{OVA: "/d/web.ova", OVADisk: 1}, "ova", "/d/web.ova", false},
		{Spec{OVAURL: u}, "ova", "https://h/x/disk.vmdk", true},
		{Spec{URL: u}, "url", "https://h/x/disk.vmdk", true},
		{Spec{VSphere: &VSphere{URL: "https://vc/sdk", VM: "/dc/vm/web", Password: "secret"}}, "vsphere", `VM "/dc/vm/web" disk 0`, true},
		{Spec{ESXi: &ESXi{Host: "esx1", Path: "[ds1] web/web.vmdk", PrivateKey: "secret"}}, "esxi_ssh", "esx1:[ds1] web/web.vmdk", true},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			src := Select(tc.spec, env)
			if src.Kind() != tc.kind {
				t.Fatalf("kind %s, want %s", src.Kind(), tc.kind)
			}
			shown, fetch := src.Describe(&Remote{Length: 42, AcceptRanges: true})
			if !strings.Contains(shown, tc.shown) {
				t.Errorf("shown %q lacks %q", shown, tc.shown)
			}
			if strings.Contains(shown+fetch, "secret") {
				t.Errorf("a secret in %q / %q", shown, fetch)
			}
			if tc.sized != strings.Contains(fetch, "42 bytes") {
				t.Errorf("FETCH reason %q does not give the size the remote end reported", fetch)
			}
		})
	}
}

// TestRelabel: a fault about a cache file names what the user wrote.
func TestRelabel(t *testing.T) {
	env := Env{CacheDir: t.TempDir()}
	u := &URL{Href: "https://h/x/disk.vmdk?sig=secret", Shown: "https://h/x/disk.vmdk"}
	src := Select(Spec{URL: u}, env)
	dest := downloadPath(env, u)
	err := src.Relabel(fault.New(fault.CorruptImage, dest, "%s is corrupt", dest).WithFact("File", dest))
	fe, _ := fault.As(err)
	if fe.File != u.Shown || strings.Contains(fe.Error(), env.CacheDir) || strings.Contains(factsText(fe), env.CacheDir) {
		t.Errorf("relabelled fault still names the cache: %v / %s", fe, factsText(fe))
	}
	plain := errors.New("open " + dest + ": no such file")
	if got := src.Relabel(plain).Error(); strings.Contains(got, env.CacheDir) || !errors.Is(src.Relabel(plain), plain) {
		t.Errorf("plain error relabelled to %q, identity kept: %v", got, errors.Is(src.Relabel(plain), plain))
	}
}

func factsText(fe *fault.Error) string {
	var b strings.Builder
	for _, f := range fe.Facts {
		b.WriteString(f.Value)
	}
	return b.String()
}
