module github.com/vmconv/terraform-provider-vmconv

go 1.25

replace libguestfs.org/guestfs => ./tools/gomod/guestfs
