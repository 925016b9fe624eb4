package fix

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vmconv/terraform-provider-vmconv/engine/guest"

	"github.com/vmconv/terraform-provider-vmconv/engine/internal/initrd"
)

// prepareModules runs in the guest: it resolves the drivers and their
// dependencies with the guest's own modprobe, copies them beside the
// modules the image already holds into a private tree, indexes that tree
// with the guest's depmod and prints the tree, the image's mode and the
// added modules. It changes nothing outside the tree, which the caller
// removes.
const prepareModules = `set -eu
image=$1 k=$2 mods=$3
shift 3
m=/lib/modules/$k
t=$(mktemp -d /var/tmp/vmconv-initramfs.XXXXXX)
d=$t/lib/modules/$k
mkdir -p "$d"
for f in modules.order modules.builtin modules.builtin.modinfo; do
	if [ -e "$m/$f" ]; then cp "$m/$f" "$d/"; fi
done
copy() { mkdir -p "$d/$(dirname "$1")"; cp "$m/$1" "$d/$1"; }
modprobe -S "$k" -a --show-depends $mods > "$t/deps"
added=
while read -r how file rest; do
	[ "$how" = insmod ] || continue
	rel=${file#*/modules/"$k"/}
	[ -e "$d/$rel" ] || { copy "$rel"; added="$added $rel"; }
done < "$t/deps"
for rel in "$@"; do
	[ -e "$d/$rel" ] || [ ! -e "$m/$rel" ] || copy "$rel"
done
depmod -b "$t" "$k"
echo "$t $(stat -L -c %a "$image")$added"
`

// errNarrow says why an image could not be edited; the fix rebuilds it.
type errNarrow struct{ why string }

func (e errNarrow) Error() string { return e.why }

// errHasDrivers says the image holds the drivers and needs nothing else.
var errHasDrivers = errors.New("the image already holds the virtio drivers")

// addDrivers adds the virtio drivers, what they depend on and a fresh
// module index to an image the guest already boots with, instead of
// rebuilding it: under emulation a rebuild runs the distribution's hooks
// for minutes, an edit takes seconds. The drivers load as a rebuilt
// image's do: udev loads them for the virtio devices it finds (both
// tools' images run udev with its drivers rule), and initramfs-tools'
// images list them in conf/modules too, as update-initramfs would from
// /etc/initramfs-tools/modules. An image this cannot edit (compressed
// other than with zstd or gzip, compressed modules, an initramfs that
// must pick up other changed files) is an errNarrow, and is rebuilt.
func addDrivers(c *Context, k guest.Kernel) (string, error) {
	if stale := changedInputs(c); len(stale) > 0 {
		return "", errNarrow{"the image must also pick up " + strings.Join(stale, ", ")}
	}
	if !c.FS.IsFile(k.Initramfs) {
		return "", errNarrow{"there is no image to add to"}
	}
	b, err := c.FS.ReadFile(k.Initramfs)
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", k.Initramfs, err)
	}
	im, err := initrd.Parse(b)
	if errors.Is(err, initrd.ErrUnsupported) {
		return "", errNarrow{err.Error()}
	}
	if err != nil {
		return "", err
	}
	dir := ""
	for _, n := range im.Names() {
		if strings.HasSuffix(n, "/modules/"+k.Version+"/modules.dep") {
			dir = path.Dir(n)
		}
	}
	if dir == "" {
		return "", errNarrow{"the image has no module index for " + k.Version}
	}
	var have []string
	if slices.Contains(im.Names(), dir+"/kernel/drivers/block/virtio_blk.ko") {
		return "", errHasDrivers
	}
	for _, n := range im.Names() {
		if rel, ok := strings.CutPrefix(n, dir+"/"); ok && strings.Contains(path.Base(rel), ".ko") {
			have = append(have, rel)
		}
	}
	if _, dry := c.FS.(*dryFS); dry {
		return "added " + strings.Join(virtioModules, ", ") + " and a new module index (dry run: the edit is not made)", nil
	}
	argv := append([]string{"/bin/sh", "-c", prepareModules, "sh", k.Initramfs, k.Version, strings.Join(virtioModules, " ")}, have...)
	out, err := c.FS.Command(c.Ctx, argv...)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	f := strings.Fields(lines[len(lines)-1])
	if len(f) >= 1 && strings.HasPrefix(f[0], "/var/tmp/vmconv-initramfs.") {
		defer c.FS.Command(c.Ctx, "rm", "-rf", f[0])
	}
	if err != nil {
		if c.Ctx.Err() != nil {
			return "", c.Ctx.Err()
		}
		return "", errNarrow{"resolving the drivers in the guest failed: " + tail(out, 500)}
	}
	if len(f) < 2 {
		return "", errNarrow{"resolving the drivers printed nothing usable: " + tail(out, 500)}
	}
	tree, added := path.Join(f[0], "lib/modules", k.Version), f[2:]
	perm, err := strconv.ParseUint(f[1], 8, 32)
	if err != nil {
		return "", errNarrow{"cannot read the image's mode: " + f[1]}
	}
	if len(added) == 0 {
		return "", errNarrow{"the guest's modprobe found nothing to add for " + strings.Join(virtioModules, ", ")}
	}
	mtime := uint32(time.Now().Unix())
	var names []string
	for _, rel := range added {
		if !strings.HasSuffix(rel, ".ko") {
			// The distribution's tool decompresses such modules for
			// kernels that cannot: leave it to do so.
			return "", errNarrow{"the guest's modules are compressed (" + rel + ")"}
		}
		data, err := c.FS.ReadFile(path.Join(tree, rel))
		if err != nil {
			return "", fmt.Errorf("reading %s: %w", rel, err)
		}
		if err := im.Put(path.Join(dir, rel), data, 0o644, mtime); err != nil {
			return "", errNarrow{err.Error()}
		}
		names = append(names, path.Base(rel))
	}
	index, err := c.FS.Glob(path.Join(tree, "modules.*"))
	if err != nil {
		return "", fmt.Errorf("listing the new module index: %w", err)
	}
	for _, p := range index {
		data, err := c.FS.ReadFile(p)
		if err != nil {
			return "", fmt.Errorf("reading %s: %w", p, err)
		}
		if err := im.Put(path.Join(dir, path.Base(p)), data, 0o644, mtime); err != nil {
			return "", errNarrow{err.Error()}
		}
	}
	if conf, ok := im.File("conf/modules"); ok && c.Info.InitramfsTool == "initramfs-tools" {
		listed := strings.Fields(string(conf))
		text := strings.TrimRight(string(conf), "\n")
		for _, m := range virtioModules {
			if !slices.Contains(listed, m) {
				text += "\n" + m
			}
		}
		if err := im.Put("conf/modules", []byte(strings.TrimLeft(text, "\n")+"\n"), 0o644, mtime); err != nil {
			return "", errNarrow{err.Error()}
		}
	}
	img, err := im.Bytes()
	if err != nil {
		return "", err
	}
	if err := c.FS.WriteFile(k.Initramfs, img, fs.FileMode(perm)); err != nil {
		return "", fmt.Errorf("writing %s: %w", k.Initramfs, err)
	}
	return fmt.Sprintf("added %s and a new module index to the image, without rebuilding it (%d -> %d bytes, %s)",
		strings.Join(names, ", "), len(b), len(img), im.Compression()), nil
}
