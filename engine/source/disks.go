package source

import (
	"context"
	"fmt"
	"strings"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/engine/guest"
)

// MaxListedDisks bounds source.disks: more disks than a VM's controllers
// can hold is a mistake, not a VM.
const MaxListedDisks = 60

// disksSource is a VM given as a list of single-disk sources, in the
// order the VM attaches them: each is located, and fetched, as it would be
// alone, and they are given consecutive SCSI slots, which is how a Linux
// guest named them (sda, sdb...).
type disksSource struct {
	specs []Spec
	env   Env
}

func (*disksSource) Kind() string { return "disks" }

// listSlot is where the i-th listed disk sits: SCSI units in order,
// skipping unit 7 (the controller's own), 15 disks per controller.
func listSlot(i int) guest.DiskSlot {
	ctl, unit := i/15, i%15
	if unit >= 7 {
		unit++
	}
	return guest.DiskSlot{Bus: "scsi", Controller: ctl, Unit: unit}
}

func (s *disksSource) members() []Source {
	out := make([]Source, len(s.specs))
	for i, sp := range s.specs {
		env := s.env
		env.WholeVM = false
		out[i] = Select(sp, env)
	}
	return out
}

func (s *disksSource) Locate(ctx context.Context, fetchNow bool) (*Local, *Remote, error) {
	l := &Local{Note: fmt.Sprintf("%d listed disk(s)", len(s.specs))}
	for i, m := range s.members() {
		ml, mr, err := m.Locate(ctx, fetchNow)
		if err != nil {
			if fe, ok := fault.As(m.Relabel(err)); ok {
				return nil, nil, fe.WithFact("Listed disk", fmt.Sprintf("source.disks[%d]", i))
			}
			return nil, nil, err
		}
		slot := listSlot(i)
		shown, _ := m.Describe(mr)
		d := Disk{Slot: slot, Device: slot.String(), Shown: shown, Kind: m.Kind()}
		switch {
		case mr != nil:
			d.Remote, d.Fingerprint = mr, mr.Fingerprint
		case ml.Head == "":
			return nil, nil, fault.New(fault.InvalidRequest, shown, "source.disks[%d] is a VM of %d disks, not one disk", i, len(ml.Disks)).
				WithHint("List single disks in source.disks, or convert the VM from its .vmx.")
		default:
			d.Head, d.Fingerprint = ml.Head, ml.Fingerprint
		}
		l.Disks = append(l.Disks, d)
	}
	return l, nil, nil
}

func (s *disksSource) Describe(*Remote) (string, string) {
	var shown, fetch []string
	for i, m := range s.members() {
		sh, f := m.Describe(nil)
		shown = append(shown, sh)
		if f != "" {
			fetch = append(fetch, fmt.Sprintf("disk %d: %s", i, f))
		}
	}
	return strings.Join(shown, ", "), strings.Join(fetch, "; ")
}

func (s *disksSource) Protected() []string {
	var out []string
	for _, m := range s.members() {
		out = append(out, m.Protected()...)
	}
	return out
}

func (s *disksSource) Relabel(err error) error {
	for _, m := range s.members() {
		err = m.Relabel(err)
	}
	return err
}
