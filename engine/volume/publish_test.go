package volume

import (
	"context"
	"errors"
	"sort"
	"strings"
	"testing"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
)

// memStorage is a pool in memory, for the publishing logic alone; the
// real libvirt boundary is tested in engine/volume_remote_test.go.
type memStorage struct {
	vols      map[string][]byte
	formats   map[string]string
	probeAs   string // what uploads probe as
	failClone bool
}

func newMem() *memStorage {
	return &memStorage{vols: map[string][]byte{}, formats: map[string]string{}, probeAs: "qcow2"}
}

func (m *memStorage) Pool(string) (PoolInfo, error) { return PoolInfo{}, nil }
func (m *memStorage) Volume(pool, name string) (Info, bool, error) {
	b, ok := m.vols[name]
	return Info{Pool: pool, Name: name, Format: m.formats[name], Physical: uint64(len(b)), Capacity: uint64(len(b))}, ok, nil
}
func (m *memStorage) Volumes(pool string) ([]Info, error) {
	var out []Info
	for n := range m.vols {
		i, _, _ := m.Volume(pool, n)
		out = append(out, i)
	}
	return out, nil
}
func (m *memStorage) Create(pool, name, format string, capacity uint64) error {
	if _, ok := m.vols[name]; ok {
		return errors.New("exists")
	}
	m.vols[name], m.formats[name] = make([]byte, capacity), format
	return nil
}
func (m *memStorage) Upload(ctx context.Context, pool, name string, src Source, progress func(int64)) error {
	b := make([]byte, src.Size())
	src.ReadAt(b, 0)
	m.vols[name] = b
	if progress != nil {
		progress(int64(len(b)))
	}
	return nil
}
func (m *memStorage) Clone(pool, from, to, format string) error {
	if m.failClone {
		return errors.New("clone failed")
	}
	m.vols[to], m.formats[to] = append([]byte(nil), m.vols[from]...), format
	return nil
}
func (m *memStorage) Delete(pool, name string) error { delete(m.vols, name); return nil }
func (m *memStorage) Download(ctx context.Context, pool, name string, off, n int64) ([]byte, error) {
	b := m.vols[name]
	return b[off:min(off+n, int64(len(b)))], nil
}
func (m *memStorage) Refresh(ctx context.Context, pool string) error {
	for n := range m.vols {
		if IsPart(n, "") {
			m.formats[n] = m.probeAs
		}
	}
	return nil
}

func (m *memStorage) names() string {
	var n []string
	for k := range m.vols {
		n = append(n, k)
	}
	sort.Strings(n)
	return strings.Join(n, " ")
}

func TestPublishSet(t *testing.T) {
	items := func() []Item {
		return []Item{{"web-disk0.qcow2", "qcow2", bytesSource("disk zero")}, {"web-disk1.qcow2", "qcow2", bytesSource("disk one")}}
	}
	final := func(ps []Published) ([]byte, error) { return []byte(`{"tool": "vmconv", "done": true}`), nil }
	publishing := []byte(`{"tool": "vmconv"}`)

	t.Run("publishes every volume and the report", func(t *testing.T) {
		m := newMem()
		ps, err := PublishSet(context.Background(), m, "p", "web", items(), false, publishing, final, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := m.names(); got != "web-disk0.qcow2 web-disk1.qcow2 web.vmconv.json" {
			t.Fatalf("pool holds %s", got)
		}
		if string(m.vols["web-disk1.qcow2"]) != "disk one" || string(m.vols["web.vmconv.json"]) != `{"tool": "vmconv", "done": true}` {
			t.Fatal("wrong content published")
		}
		if ps[0].Sent != int64(len("disk zero")) || ps[0].Stamp == "" {
			t.Fatalf("published %+v", ps[0])
		}
	})
	t.Run("an image that does not probe as its format publishes nothing", func(t *testing.T) {
		m := newMem()
		m.probeAs = "raw"
		if _, err := PublishSet(context.Background(), m, "p", "web", items(), false, publishing, final, nil); !fault.Is(err, fault.HypervisorFailed) {
			t.Fatalf("err %v", err)
		}
		if got := m.names(); got != "" {
			t.Fatalf("a failed publish left %s", got)
		}
	})
	t.Run("a failed clone leaves no temporary and no final volume of it", func(t *testing.T) {
		m := newMem()
		m.failClone = true
		if _, err := PublishSet(context.Background(), m, "p", "web", items(), false, publishing, final, nil); err == nil {
			t.Fatal("no error")
		}
		if got := m.names(); strings.Contains(got, partInfix) || strings.Contains(got, "disk") {
			t.Fatalf("a failed publish left %s", got)
		}
	})
	t.Run("an existing volume is refused unless replaced", func(t *testing.T) {
		m := newMem()
		m.vols["web-disk1.qcow2"] = []byte("someone's")
		if _, err := PublishSet(context.Background(), m, "p", "web", items(), false, publishing, final, nil); !fault.Is(err, fault.OutputExists) {
			t.Fatalf("err %v", err)
		}
		if string(m.vols["web-disk1.qcow2"]) != "someone's" || m.names() != "web-disk1.qcow2" {
			t.Fatalf("a refused publish touched the pool: %s", m.names())
		}
		if _, err := PublishSet(context.Background(), m, "p", "web", items(), true, publishing, final, nil); err != nil || string(m.vols["web-disk1.qcow2"]) != "disk one" {
			t.Fatalf("replace: %v", err)
		}
	})
	t.Run("temporaries a killed run left are swept, others' volumes are not", func(t *testing.T) {
		m := newMem()
		m.vols["web-disk0.qcow2.vmconv-part-0123456789ab"] = []byte("half")
		m.vols["web-disk0.qcow2.backup"] = []byte("user's")
		if _, err := PublishSet(context.Background(), m, "p", "web", items(), false, publishing, final, nil); err != nil {
			t.Fatal(err)
		}
		if got := m.names(); got != "web-disk0.qcow2 web-disk0.qcow2.backup web-disk1.qcow2 web.vmconv.json" {
			t.Fatalf("pool holds %s", got)
		}
	})
}

func TestMarkdownVolume(t *testing.T) {
	ctx := context.Background()
	items := []Item{{"web.qcow2", "qcow2", bytesSource("disk")}}
	final := func([]Published) ([]byte, error) { return []byte(`{"tool": "vmconv", "done": true}`), nil }

	m := newMem()
	if _, err := PublishSet(ctx, m, "p", "web.qcow2", items, false, []byte(`{"tool": "vmconv"}`), final, nil); err != nil {
		t.Fatal(err)
	}
	if err := WriteMarkdown(ctx, m, "p", "web.qcow2", []byte("# vmconv: web.vmdk\n")); err != nil {
		t.Fatal(err)
	}
	if got := m.names(); got != "web.qcow2 web.qcow2.vmconv.json web.qcow2.vmconv.md" {
		t.Fatalf("pool holds %s", got)
	}
	// A rewrite replaces the volume whole: a shorter summary leaves no
	// tail of the longer one.
	if err := WriteMarkdown(ctx, m, "p", "web.qcow2", []byte("# vmconv\n")); err != nil || string(m.vols["web.qcow2.vmconv.md"]) != "# vmconv\n" {
		t.Fatalf("rewritten as %q: %v", m.vols["web.qcow2.vmconv.md"], err)
	}

	// Publishing again drops the summary of what it replaces before the
	// swap, so a killed run leaves none that describes the old image.
	m.failClone = true
	if _, err := PublishSet(ctx, m, "p", "web.qcow2", items, true, []byte(`{"tool": "vmconv"}`), final, nil); err == nil {
		t.Fatal("no error")
	}
	if _, ok := m.vols["web.qcow2.vmconv.md"]; ok {
		t.Fatal("a publish that failed after the swap began kept the old Markdown report")
	}
	if string(m.vols["web.qcow2.vmconv.json"]) != `{"tool": "vmconv"}` {
		t.Fatal("the report no longer marks the volume as vmconv's")
	}

	m.failClone = false
	WriteMarkdown(ctx, m, "p", "web.qcow2", []byte("# vmconv\n"))
	if err := Remove(m, "p", "web.qcow2"); err != nil || m.names() != "" {
		t.Fatalf("remove left %q: %v", m.names(), err)
	}
	// One published before vmconv wrote Markdown reports has none.
	m.vols["web.qcow2"], m.vols["web.qcow2.vmconv.json"] = []byte("disk"), []byte("{}")
	if err := Remove(m, "p", "web.qcow2"); err != nil || m.names() != "" {
		t.Fatalf("remove without a Markdown report left %q: %v", m.names(), err)
	}
}

func TestIsReport(t *testing.T) {
	for name, want := range map[string]bool{
		"web.qcow2.vmconv.json": true, "web.qcow2.vmconv.md": true,
		"web.qcow2": false, "web.md": false, "web.vmconv.md.qcow2": false,
	} {
		if IsReport(name) != want {
			t.Errorf("IsReport(%q) = %v", name, !want)
		}
	}
}
