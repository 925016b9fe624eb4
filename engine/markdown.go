package engine

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/vmconv/terraform-provider-vmconv/engine/boottest"
	"github.com/vmconv/terraform-provider-vmconv/engine/guest"
	"github.com/vmconv/terraform-provider-vmconv/engine/internal/room"
)

// Markdown renders a report short enough to paste into a pull request:
// the source and its chain, sizes in human units, the hardware, every fix
// as a small diff, the boot test's verdict with the console's last lines,
// and the stages' timings. The JSON report stays the complete record.
func (r *Report) Markdown() string {
	var b strings.Builder
	p, res := r.Plan, r.Result
	if p == nil || res == nil {
		return "# vmconv report\n\nThe report holds no plan or result.\n"
	}
	fmt.Fprintf(&b, "# vmconv: %s\n\n", md(p.Source.Path))
	fmt.Fprintf(&b, "Converted %s by %s.\n\n", r.Created, r.Tool)
	writeSource(&b, p)
	b.WriteString("## Output\n\n")
	if v := res.Output.Volume; v != nil {
		fmt.Fprintf(&b, "- volume `%s` in pool `%s` on `%s`: %s, %s allocated of %s\n", v.Name, v.Pool, v.URI, v.Format, room.Human(int64(v.Allocation)), room.Human(int64(v.Capacity)))
	} else {
		fmt.Fprintf(&b, "- `%s`: %s, %s\n", res.Output.Path, res.Output.Format, room.Human(res.Output.Size))
	}
	for _, d := range res.Disks {
		fmt.Fprintf(&b, "  - `%s`: %s\n", d.Path, room.Human(d.Size))
	}
	if res.Output.SHA256 != "" {
		fmt.Fprintf(&b, "- SHA-256 `%s`\n", res.Output.SHA256)
	}
	b.WriteString("\n")
	writeHardware(&b, p)
	writeGuest(&b, res.Guest)
	writeChanges(&b, "Fixes", fixChanges(res))
	writeBootTest(&b, res)
	if len(res.Stages) > 0 {
		b.WriteString("## Stages\n\n| Stage | | Time |\n| --- | --- | ---: |\n")
		for _, s := range res.Stages {
			t := "–"
			if s.Status == "ran" {
				t = (time.Duration(s.DurationMS) * time.Millisecond).Round(100 * time.Millisecond).String()
			}
			fmt.Fprintf(&b, "| %s | %s | %s |\n", strings.ToUpper(string(s.Name)), s.Status, t)
		}
		b.WriteString("\n")
	}
	writeAppliance(&b, res.Appliance)
	writeWarm(&b, res.Warm)
	writeWarnings(&b, res.Warnings)
	return b.String()
}

// writeWarm lists a warm migration's syncs and where its downtime went.
func writeWarm(b *strings.Builder, w *WarmResult) {
	if w == nil {
		return
	}
	ms := func(n int64) string {
		return (time.Duration(n) * time.Millisecond).Round(100 * time.Millisecond).String()
	}
	fmt.Fprintf(b, "## Warm migration\n\n- downtime %s, from the shutdown request (%s) to the images published: shutdown %s, final sync %s, then the stages above after FETCH\n\n",
		ms(w.DowntimeMS), w.PowerDown.How, ms(w.ShutdownMS), ms(w.FinalSyncMS))
	b.WriteString("| Sync | At | | Changed | Read | Change IDs |\n| ---: | --- | --- | ---: | ---: | --- |\n")
	for i, s := range w.Syncs {
		kind := "changed areas"
		if s.Full {
			kind = "full: " + md(s.FullReason)
		}
		var ids []string
		for _, d := range s.Disks {
			ids = append(ids, fmt.Sprintf("`%s` → `%s`", d.From, d.To))
		}
		fmt.Fprintf(b, "| %d | %s | %s | %s | %s | %s |\n", i+1, s.At.Format(time.RFC3339), kind, room.Human(s.ChangedBytes), room.Human(s.CopiedBytes), strings.Join(ids, "<br>"))
	}
	b.WriteString("\n")
}

// PlanMarkdown renders what a plan will do, for a comment on a pull
// request before the migration runs.
func PlanMarkdown(p *Plan) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# vmconv plan: %s\n\n", md(p.Source.Path))
	writeSource(&b, p)
	b.WriteString("## Output\n\n")
	switch {
	case p.Output.Volume != nil:
		fmt.Fprintf(&b, "- volume `%s` in pool `%s` on `%s`, %s\n", p.Output.Volume.Name, p.Output.Volume.Pool, p.Output.Volume.URI, p.Output.Format)
	default:
		fmt.Fprintf(&b, "- `%s`, %s\n", p.Output.Path, p.Output.Format)
	}
	if p.Output.EstimatedSize > 0 {
		fmt.Fprintf(&b, "- estimated size %s\n", room.Human(p.Output.EstimatedSize))
	}
	b.WriteString("\n## Stages\n\n")
	for _, s := range p.Stages {
		mark := "skip"
		if s.Run {
			mark = "run"
		}
		fmt.Fprintf(&b, "- **%s** (%s): %s\n", strings.ToUpper(string(s.Name)), mark, md(s.Reason))
	}
	b.WriteString("\n")
	writeHardware(&b, p)
	if g := p.Guest; g != nil {
		writeGuest(&b, g.Guest)
		writeChanges(&b, "Fixes it will make (dry run)", g.Changes)
	}
	writeWarnings(&b, p.Warnings)
	return b.String()
}

func writeSource(b *strings.Builder, p *Plan) {
	b.WriteString("## Source\n\n")
	fmt.Fprintf(b, "- %s `%s`", p.Source.Kind, p.Source.Path)
	if p.Source.Format != "" {
		fmt.Fprintf(b, ", %s", p.Source.Format)
	}
	if p.Source.VirtualSize > 0 {
		fmt.Fprintf(b, ", %s virtual", room.Human(p.Source.VirtualSize))
	}
	b.WriteString("\n")
	if len(p.Source.Chain) > 1 {
		b.WriteString("- chain, newest first:\n")
		for _, l := range p.Source.Chain {
			fmt.Fprintf(b, "  - `%s`\n", l.Path)
		}
	}
	for i, d := range p.Disks {
		fmt.Fprintf(b, "- disk %d (%s): `%s`, %s virtual, %d file(s) in its chain\n", i, d.Device, d.Source.Path, room.Human(d.Source.VirtualSize), len(d.Source.Chain))
	}
	b.WriteString("\n")
}

func writeHardware(b *strings.Builder, p *Plan) {
	h := p.Hardware
	if h == nil {
		if fw := p.Firmware(); fw != "" {
			fmt.Fprintf(b, "## Hardware\n\n- firmware %s\n\n", fw)
		}
		return
	}
	fmt.Fprintf(b, "## Hardware\n\n- %d vCPU(s), %s memory, firmware %s\n", h.VCPUs, room.Human(int64(h.MemoryMiB)<<20), h.Firmware)
	for _, n := range h.NICs {
		fmt.Fprintf(b, "- NIC %s `%s`\n", n.Model, n.MAC)
	}
	for _, s := range h.Skipped {
		fmt.Fprintf(b, "- left out: %s\n", md(s))
	}
	b.WriteString("\n")
}

func writeGuest(b *strings.Builder, g *guest.Info) {
	if g == nil {
		return
	}
	name := strings.TrimSpace(strings.Join([]string{g.Distro, g.Version}, " "))
	if g.ProductName != "" {
		name = g.ProductName
	}
	fmt.Fprintf(b, "## Guest\n\n- %s %s, root `%s`, firmware %s", g.OS, name, g.Root, g.Firmware)
	if g.Hostname != "" {
		fmt.Fprintf(b, ", hostname `%s`", g.Hostname)
	}
	b.WriteString("\n\n")
}

func fixChanges(res *Result) []guest.Change {
	if res.Fixes == nil {
		return nil
	}
	return res.Fixes.Changes
}

// writeChanges shows every change to the guest: a text file as a diff, the
// rest as what was done.
func writeChanges(b *strings.Builder, title string, cs []guest.Change) {
	if len(cs) == 0 {
		return
	}
	fmt.Fprintf(b, "## %s\n\n", title)
	for _, c := range cs {
		fmt.Fprintf(b, "- **%s** %s", c.Fix, c.Action)
		if c.Path != "" {
			fmt.Fprintf(b, " `%s`", c.Path)
		}
		fmt.Fprintf(b, ": %s\n", md(c.Reason))
		switch {
		case c.Command != "":
			fmt.Fprintf(b, "\n  ```\n  $ %s\n  ```\n", c.Command)
		case c.Before != "" || c.After != "":
			fmt.Fprintf(b, "\n  ```diff\n%s  ```\n", indent(smallDiff(c.Before, c.After), "  "))
		case c.BeforeSHA256 != "" || c.AfterSHA256 != "":
			fmt.Fprintf(b, "  (binary: sha256 %s → %s)\n", short(c.BeforeSHA256), short(c.AfterSHA256))
		}
	}
	b.WriteString("\n")
}

func writeBootTest(b *strings.Builder, res *Result) {
	bt := res.BootTest
	if bt == nil {
		return
	}
	fmt.Fprintf(b, "## Boot test: %s\n\n- %s", bt.Status, md(bt.Detail))
	if bt.Reason != "" && bt.Status != "passed" {
		fmt.Fprintf(b, " (%s)", bt.Reason)
	}
	fmt.Fprintf(b, "\n- %s, %s disk, %s NIC, %s firmware, %s\n", bt.Accel, bt.DiskBus, bt.NICModel, bt.Firmware,
		(time.Duration(bt.DurationMS) * time.Millisecond).Round(time.Second))
	if lines := boottest.ConsoleLines(bt.ConsoleLog, 12); len(lines) > 0 {
		// A line of backticks would end the block early.
		fmt.Fprintf(b, "\nThe console's last lines:\n\n```\n%s\n```\n", strings.ReplaceAll(strings.Join(lines, "\n"), "```", "'''"))
	}
	b.WriteString("\n")
}

func writeWarnings(b *strings.Builder, ws []string) {
	if len(ws) == 0 {
		return
	}
	b.WriteString("## Warnings\n\n")
	for _, w := range ws {
		fmt.Fprintf(b, "- %s\n", md(w))
	}
	b.WriteString("\n")
}

// md keeps a free text on one Markdown line.
func md(s string) string { return strings.ReplaceAll(strings.TrimSpace(s), "\n", " ") }

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	if h == "" {
		return "none"
	}
	return h
}

func indent(s, pre string) string {
	var b strings.Builder
	for _, l := range strings.SplitAfter(s, "\n") {
		if l != "" {
			b.WriteString(pre + l)
		}
	}
	return b.String()
}

// writeAppliance lists the appliance's costliest calls, the way a reader
// asks where INSPECT and FIX spent their time.
func writeAppliance(b *strings.Builder, calls []guest.CallStat) {
	if len(calls) == 0 {
		return
	}
	top := slices.Clone(calls)
	slices.SortStableFunc(top, func(x, y guest.CallStat) int { return cmp.Compare(y.Seconds, x.Seconds) })
	var total float64
	for _, c := range calls {
		total += c.Seconds
	}
	fmt.Fprintf(b, "## Appliance\n\n%s in the libguestfs appliance; the costliest calls:\n\n| Call | Calls | Time |\n| --- | ---: | ---: |\n", secondsText(total))
	for _, c := range top[:min(len(top), 8)] {
		fmt.Fprintf(b, "| %s | %d | %s |\n", md(c.Name), c.Calls, secondsText(c.Seconds))
	}
	b.WriteString("\n")
}

func secondsText(s float64) string {
	return (time.Duration(s * float64(time.Second))).Round(100 * time.Millisecond).String()
}
