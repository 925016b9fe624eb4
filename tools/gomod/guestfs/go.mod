// Debian's golang-guestfs-dev ships the libguestfs Go binding as bare source
// without a go.mod, and libguestfs.org/guestfs is not on the Go module proxy.
// This module wraps that source through a symlink into the Debian package, so
// a clean clone needs nothing but `apt-get install golang-guestfs-dev`
// (tools/setup does it). Only engine/internal/guestfs imports it.
module libguestfs.org/guestfs

go 1.21
