package testimg

// MiB is a mebibyte.
const MiB = 1 << 20

// The standard three-layer content the tests use for an 8 MiB disk: the
// base's data must survive where no snapshot wrote, each snapshot must win
// where it wrote, and the boundaries between them are where bugs show.
var (
	BaseLayer = Layer{{Offset: 0, Length: MiB, Byte: 0xb0}, {Offset: 4 * MiB, Length: MiB, Byte: 0xb1}, {Offset: 7 * MiB, Length: MiB, Byte: 0xb7}}
	Snap1     = Layer{{Offset: 4 * MiB, Length: 64 << 10, Byte: 0x51}, {Offset: 2 * MiB, Length: MiB, Byte: 0x52}}
	Snap2     = Layer{{Offset: 4 * MiB, Length: 4096, Byte: 0x61}, {Offset: 6 * MiB, Length: 128 << 10, Byte: 0x62}}
)
