// Debian's golang-guestfs-dev ships the libguestfs Go binding as bare source
// without a go.mod, and libguestfs.org/guestfs is not on the Go module proxy.
// This module wraps that source through a symlink into the Debian package,
// which tools/setup installs and links (the link is not tracked: the file is
// Debian's generated code, not ours to format or edit). Only
// engine/internal/guestfs imports it.
module libguestfs.org/guestfs

go 1.21
