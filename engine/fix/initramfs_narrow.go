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

// indexModules runs in the guest: it copies the modules named (paths
// under /lib/modules/<kernel>) into a private tree, indexes that tree
// with the guest's own depmod and prints the tree first and the image's
// mode last. The tree is laid out both ways kmod may look for it
// (/lib/modules and /usr/lib/modules). It changes nothing outside the
// tree, which the caller removes, also when a step fails.
const indexModules = `set -eu
image=$1 k=$2
shift 2
t=$(mktemp -d /var/tmp/vmconv-initramfs.XXXXXX)
echo "$t"
m=/lib/modules/$k
d=$t/usr/lib/modules/$k
mkdir -p "$d"
ln -s usr/lib "$t/lib"
for f in modules.order modules.builtin modules.builtin.modinfo; do
	if [ -e "$m/$f" ]; then cp "$m/$f" "$d/"; fi
done
for rel in "$@"; do
	mkdir -p "$d/$(dirname "$rel")"
	cp "$m/$rel" "$d/$rel"
done
depmod -b "$t" "$k"
stat -L -c %a "$image"
`

// errNarrow says why an image could not be edited; the fix rebuilds it.
type errNarrow struct{ why string }

func (e errNarrow) Error() string { return e.why }

// errHasDrivers says the image holds the drivers and needs nothing else.
var errHasDrivers = errors.New("the image already holds the virtio drivers")

// moduleDeps reads a modules.dep: each module's path and the paths of
// everything it depends on, all relative to the kernel's module folder.
func moduleDeps(b []byte) map[string][]string {
	out := map[string][]string{}
	for _, l := range strings.Split(string(b), "\n") {
		mod, deps, ok := strings.Cut(l, ":")
		if ok && mod != "" {
			out[mod] = strings.Fields(deps)
		}
	}
	return out
}

// moduleName is how modprobe names a module file: virtio-blk.ko.xz and
// virtio_blk.ko are both virtio_blk.
func moduleName(rel string) string {
	b, _, _ := strings.Cut(path.Base(rel), ".ko")
	return strings.ReplaceAll(b, "-", "_")
}

// driverPlan decides, reading only, what an edit of k's image adds: the
// virtio modules and what they depend on that the image lacks. Both the
// dry run and the apply decide through it, so the plan lists what the
// apply does.
func driverPlan(c *Context, k guest.Kernel, im *initrd.Image) (dir string, have, add []string, err error) {
	for _, n := range im.Names() {
		if strings.HasSuffix(n, "/modules/"+k.Version+"/modules.dep") {
			dir = path.Dir(n)
		}
	}
	if dir == "" {
		return "", nil, nil, errNarrow{"the image has no module index for " + k.Version}
	}
	for _, n := range im.Names() {
		rel, ok := strings.CutPrefix(n, dir+"/")
		if !ok || !strings.Contains(path.Base(rel), ".ko") {
			continue
		}
		if moduleName(rel) == "virtio_blk" {
			return "", nil, nil, errHasDrivers
		}
		have = append(have, rel)
	}
	dep, err := c.FS.ReadFile("/lib/modules/" + k.Version + "/modules.dep")
	if err != nil {
		return "", nil, nil, errNarrow{"the guest has no module index for " + k.Version}
	}
	deps := moduleDeps(dep)
	// A new index covers only the modules the tree holds: every module of
	// the image must still be in the guest, or the edit would drop it.
	plain := map[string]string{} // kernel/x/y.ko -> kernel/x/y.ko.zst
	for rel := range deps {
		if i := strings.LastIndex(rel, ".ko"); i >= 0 {
			plain[rel[:i+3]] = rel
		}
	}
	for _, rel := range have {
		if _, ok := deps[rel]; ok {
			continue
		}
		if disk, ok := plain[rel]; ok {
			return "", nil, nil, errNarrow{"the guest's modules are compressed (" + disk + ")"}
		}
		return "", nil, nil, errNarrow{"the image holds " + rel + ", which the guest's modules of " + k.Version + " no longer include"}
	}
	byName := map[string]string{}
	for rel := range deps {
		byName[moduleName(rel)] = rel
	}
	for _, m := range virtioModules {
		rel, ok := byName[m]
		if !ok {
			return "", nil, nil, errNarrow{m + " is not a module of " + k.Version + " (built in, or not installed)"}
		}
		for _, r := range append(slices.Clone(deps[rel]), rel) {
			if !strings.HasSuffix(r, ".ko") {
				// The distribution's tool decompresses such modules for
				// kernels that cannot: leave it to do so.
				return "", nil, nil, errNarrow{"the guest's modules are compressed (" + r + ")"}
			}
			if !slices.Contains(have, r) && !slices.Contains(add, r) {
				add = append(add, r)
			}
		}
	}
	return dir, have, add, nil
}

// addDrivers adds the virtio drivers, what they depend on and a fresh
// module index to an image the guest already boots with, instead of
// rebuilding it: under emulation a rebuild runs the distribution's hooks
// for minutes, an edit takes seconds. The drivers load as a rebuilt
// image's do: udev loads them for the virtio devices it finds (both
// tools' images run udev with its drivers rule), and initramfs-tools'
// images list them in conf/modules too, as update-initramfs would from
// /etc/initramfs-tools/modules. An image this cannot edit (compressed
// other than with zstd or gzip, compressed modules, modules the guest no
// longer has, an initramfs that must pick up other changed files) is an
// errNarrow, and is rebuilt. The edited image replaces the old one by a
// rename, so a failed write leaves the old one.
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
	dir, have, add, err := driverPlan(c, k, im)
	if err != nil {
		return "", err
	}
	var names []string
	for _, rel := range add {
		names = append(names, path.Base(rel))
	}
	how := "added " + strings.Join(names, ", ") + " and a new module index to the image, without rebuilding it"
	if _, dry := c.FS.(*dryFS); dry {
		return how, nil
	}

	argv := append([]string{"/bin/sh", "-c", indexModules, "sh", k.Initramfs, k.Version}, append(slices.Clone(have), add...)...)
	out, err := c.FS.Command(c.Ctx, argv...)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	tmp := strings.TrimSpace(lines[0])
	if strings.HasPrefix(tmp, "/var/tmp/vmconv-initramfs.") && !strings.ContainsAny(tmp, " \t") {
		defer c.FS.Command(c.Ctx, "rm", "-rf", tmp)
	}
	if err != nil {
		if c.Ctx.Err() != nil {
			return "", c.Ctx.Err()
		}
		return "", errNarrow{"indexing the modules in the guest failed: " + tail(out, 500)}
	}
	perm, perr := strconv.ParseUint(strings.TrimSpace(lines[len(lines)-1]), 8, 32)
	if len(lines) < 2 || perr != nil {
		return "", errNarrow{"indexing the modules in the guest printed nothing usable: " + tail(out, 500)}
	}
	tree := path.Join(tmp, "usr/lib/modules", k.Version)
	mtime := uint32(time.Now().Unix())
	put := func(name string, data []byte) error {
		if err := im.Put(name, data, 0o644, mtime); err != nil {
			return errNarrow{err.Error()}
		}
		return nil
	}
	for _, rel := range add {
		data, err := c.FS.ReadFile(path.Join(tree, rel))
		if err != nil {
			return "", fmt.Errorf("reading %s: %w", rel, err)
		}
		if err := put(path.Join(dir, rel), data); err != nil {
			return "", err
		}
	}
	index, err := c.FS.Glob(path.Join(tree, "modules.*"))
	if err != nil || len(index) == 0 {
		return "", errNarrow{fmt.Sprintf("depmod wrote no module index (%v)", err)}
	}
	for _, p := range index {
		data, err := c.FS.ReadFile(p)
		if err != nil {
			return "", fmt.Errorf("reading %s: %w", p, err)
		}
		if err := put(path.Join(dir, path.Base(p)), data); err != nil {
			return "", err
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
		if err := put("conf/modules", []byte(strings.TrimLeft(text, "\n")+"\n")); err != nil {
			return "", err
		}
	}
	img, err := im.Bytes()
	if err != nil {
		return "", err
	}
	next := k.Initramfs + ".vmconv-new"
	if err := c.FS.WriteFile(next, img, fs.FileMode(perm)); err != nil {
		c.FS.Remove(next)
		return "", errNarrow{fmt.Sprintf("writing the edited image failed: %v", err)}
	}
	if out, err := c.FS.Command(c.Ctx, "mv", "-f", next, k.Initramfs); err != nil {
		c.FS.Remove(next)
		return "", errNarrow{fmt.Sprintf("replacing the image failed: %v %s", err, tail(out, 300))}
	}
	return fmt.Sprintf("%s (%d -> %d bytes, %s)", how, len(b), len(img), im.Compression()), nil
}
