package engine

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmconv/terraform-provider-vmconv/engine/boottest"
	"github.com/vmconv/terraform-provider-vmconv/engine/chain"
	"github.com/vmconv/terraform-provider-vmconv/engine/fix"
	"github.com/vmconv/terraform-provider-vmconv/engine/guest"
)

func TestSmallDiff(t *testing.T) {
	before := "# fstab\n/dev/sda1 / ext4 defaults 0 1\n/dev/sda2 none swap sw 0 0\nproc /proc proc defaults 0 0\ntmpfs /tmp tmpfs defaults 0 0\n"
	after := "# fstab\nUUID=1234 / ext4 defaults 0 1\n/dev/sda2 none swap sw 0 0\nproc /proc proc defaults 0 0\ntmpfs /tmp tmpfs defaults 0 0\n"
	want := "  # fstab\n- /dev/sda1 / ext4 defaults 0 1\n+ UUID=1234 / ext4 defaults 0 1\n  /dev/sda2 none swap sw 0 0\n…\n"
	if got := smallDiff(before, after); got != want {
		t.Errorf("smallDiff:\n%s\nwant:\n%s", got, want)
	}
	if got := smallDiff("", "new line\n"); got != "+ new line\n" {
		t.Errorf("a created file: %q", got)
	}
}

func TestReportMarkdown(t *testing.T) {
	dir := t.TempDir()
	console := filepath.Join(dir, "boot.log")
	os.WriteFile(console, []byte("early\n\x1b[0;32m  OK  \x1b[0m] Reached target Multi-User System.\r\nvmconv-boot-ok 1234\n"), 0o644)
	r := &Report{Tool: "vmconv", Created: "2026-11-30T08:00:00Z",
		Plan: &Plan{Source: SourcePlan{Kind: "path", Path: "/src/web-000001.vmdk", Format: "vmdk", VirtualSize: 8 << 30,
			Chain: []*chain.Layer{{Path: "/src/web-000001.vmdk"}, {Path: "/src/web.vmdk"}}},
			Hardware: &Hardware{VCPUs: 2, MemoryMiB: 2048, Firmware: "bios"}},
		Result: &Result{
			Output: OutputResult{Path: "/out/web.qcow2", Format: "qcow2", Size: 1536 << 20, SHA256: "ab12"},
			Guest:  &guest.Info{OS: "linux", Distro: "debian", Version: "12", Root: "/dev/sda1", Firmware: "bios", Hostname: "web"},
			Fixes: &fix.Result{Changes: []guest.Change{
				{Fix: "fstab", Action: "modified", Path: "/etc/fstab", Reason: "device names change on virtio", Before: "/dev/sda1 / ext4\n", After: "UUID=1 / ext4\n"},
				{Fix: "initramfs", Action: "command", Reason: "add virtio drivers", Command: "update-initramfs -u -k all"},
			}},
			BootTest: &boottest.Result{Status: "passed", Detail: "reached multi-user", DurationMS: 61000, ConsoleLog: console, Accel: "tcg", DiskBus: "virtio", NICModel: "virtio", Firmware: "bios"},
			Stages:   []StageResult{{Name: StageFetch, Status: "skipped"}, {Name: StageConvert, Status: "ran", DurationMS: 2500}},
		}}
	md := r.Markdown()
	for _, want := range []string{
		"# vmconv: /src/web-000001.vmdk",
		"- path `/src/web-000001.vmdk`, vmdk, 8.0 GiB virtual",
		"  - `/src/web.vmdk`",
		"- `/out/web.qcow2`: qcow2, 1.5 GiB",
		"- 2 vCPU(s), 2.0 GiB memory, firmware bios",
		"- linux debian 12, root `/dev/sda1`, firmware bios, hostname `web`",
		"- **fstab** modified `/etc/fstab`: device names change on virtio\n\n  ```diff\n  - /dev/sda1 / ext4\n  + UUID=1 / ext4\n  ```",
		"$ update-initramfs -u -k all",
		"## Boot test: passed",
		"- tcg, virtio disk, virtio NIC, bios firmware, 1m1s",
		"```\nearly\nOK  ] Reached target Multi-User System.\nvmconv-boot-ok 1234\n```",
		"| FETCH | skipped | – |",
		"| CONVERT | ran | 2.5s |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("the report lacks %q:\n%s", want, md)
		}
	}
}

func TestMarkdownAppliance(t *testing.T) {
	var b strings.Builder
	writeAppliance(&b, []guest.CallStat{
		{Name: "launch", Calls: 1, Seconds: 18.04}, {Name: "inspect os", Calls: 1, Seconds: 6.5},
		{Name: "command update-initramfs", Calls: 2, Seconds: 61.26}, {Name: "read file", Calls: 40, Seconds: 0.8},
	})
	got := b.String()
	want := "## Appliance\n\n1m26.6s in the libguestfs appliance; the costliest calls:\n\n| Call | Calls | Time |\n| --- | ---: | ---: |\n" +
		"| command update-initramfs | 2 | 1m1.3s |\n| launch | 1 | 18s |\n| inspect os | 1 | 6.5s |\n| read file | 40 | 800ms |\n\n"
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	b.Reset()
	writeAppliance(&b, nil)
	if b.Len() != 0 {
		t.Errorf("no appliance, yet: %q", b.String())
	}
}
