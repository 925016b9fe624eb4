package span

// Use is what claims a unit of a file.
type Use uint8

const (
	Free Use = iota
	// Meta is a header or table: nothing else may use its units.
	Meta
	// Data is an allocated cluster, grain or block: exclusive too.
	Data
	// Packed is compressed data, which several clusters may pack into one
	// unit; it may share units with other packed data only.
	Packed
)

// pageUnits is how many units one page of the map covers (2 bits each).
const pageUnits = 1 << 16

type page [pageUnits / 32]uint64

// Map records which fixed-size, aligned units of a file are claimed and by
// what. Pages are allocated as units are claimed, so the memory follows
// what the image uses, up to a bound: past it the map stops recording (Full
// reports it) rather than grow without limit.
type Map struct {
	unit, base int64
	pages      map[int64]*page
	maxPages   int
	full       bool
	names      []named
}

type named struct {
	name   string
	off, n int64
}

// Conflict is a unit claimed twice.
type Conflict struct {
	// Offset is the first byte of the shared unit.
	Offset int64
	// With is the earlier claim: a table's name, or "data" or "packed data".
	With string
}

// NewMap returns a map of units of unit bytes starting at base (units are
// [base+k*unit, base+(k+1)*unit)); it holds at most maxBytes of bitmap.
func NewMap(unit, base, maxBytes int64) *Map {
	return &Map{unit: unit, base: base, pages: map[int64]*page{}, maxPages: int(max(1, maxBytes/int64(len(page{})*8)))}
}

// Full reports that the map reached its memory bound and stopped recording
// new pages; conflicts in pages it holds are still found.
func (m *Map) Full() bool { return m.full }

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

// Claim marks the units [off, off+n) touches as used by u (named name, for
// messages, when u is Meta) and returns the first unit already claimed in a
// way that conflicts, or nil. off and n must have been checked with Within.
func (m *Map) Claim(name string, u Use, off, n int64) *Conflict {
	if n <= 0 {
		return nil
	}
	first := floorDiv(off-m.base, m.unit)
	last := floorDiv(off+n-1-m.base, m.unit)
	var c *Conflict
	for k := first; k <= last; k++ {
		pi, bit := floorDiv(k, pageUnits), k-floorDiv(k, pageUnits)*pageUnits
		p := m.pages[pi]
		if p == nil {
			if len(m.pages) >= m.maxPages {
				m.full = true
				continue
			}
			p = new(page)
			m.pages[pi] = p
		}
		w, sh := bit/32, uint(bit%32)*2
		old := Use(p[w] >> sh & 3)
		switch {
		case old == Free:
			p[w] |= uint64(u) << sh
		case old == Packed && u == Packed:
		case c == nil:
			c = &Conflict{Offset: m.base + k*m.unit, With: m.describe(old, m.base+k*m.unit)}
		}
	}
	if u == Meta {
		m.names = append(m.names, named{name, off, n})
	}
	return c
}

func (m *Map) describe(u Use, unitOff int64) string {
	switch u {
	case Data:
		return "data"
	case Packed:
		return "packed data"
	}
	for _, nm := range m.names {
		if Overlap(nm.off, nm.n, unitOff, m.unit) {
			return nm.name
		}
	}
	return "metadata"
}

// Query returns the first unit of [off, off+n) that is claimed, without
// claiming anything.
func (m *Map) Query(off, n int64) *Conflict {
	if n <= 0 {
		return nil
	}
	for k := floorDiv(off-m.base, m.unit); k <= floorDiv(off+n-1-m.base, m.unit); k++ {
		pi := floorDiv(k, pageUnits)
		p := m.pages[pi]
		if p == nil {
			continue
		}
		bit := k - pi*pageUnits
		if u := Use(p[bit/32] >> (uint(bit%32) * 2) & 3); u != Free {
			return &Conflict{Offset: m.base + k*m.unit, With: m.describe(u, m.base+k*m.unit)}
		}
	}
	return nil
}
