// Package nbd is a read-only NBD server for QEMU. A base image that lives
// in a storage pool on a remote libvirt host can only be read through
// libvirt's ranged volume download, but QEMU can back a local qcow2 overlay
// onto an NBD export. Serving the remote file's bytes here lets qemu-img and
// the libguestfs appliance open "overlay -> nbd -> remote base" as if the
// base were local, while every write stays in the overlay.
//
// Only what QEMU needs is spoken: the fixed newstyle handshake and simple
// replies. Structured replies are refused so that a read error can be sent
// before any data (a simple reply cannot report one after).
package nbd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"
)

// Protocol constants, named as in the NBD protocol document (doc/proto.md).
const (
	nbdMagic      = 0x4e42444d41474943 // "NBDMAGIC"
	iHaveOpt      = 0x49484156454F5054 // "IHAVEOPT"
	optReplyMagic = 0x3e889045565a9
	requestMagic  = 0x25609513
	replyMagic    = 0x67446698

	flagFixedNewstyle = 1 << 0 // handshake flags, and the client's echo of them
	flagNoZeroes      = 1 << 1

	optExportName       = 1
	optAbort            = 2
	optList             = 3
	optInfo             = 6
	optGo               = 7
	optStructuredReply  = 8
	repAck              = 1
	repServer           = 2
	repInfo             = 3
	repErrUnsup         = 1<<31 + 1
	repErrInvalid       = 1<<31 + 3
	infoExport          = 0
	infoBlockSize       = 3
	transmitHasFlags    = 1 << 0
	transmitReadOnly    = 1 << 1
	transmitSendFlush   = 1 << 2
	transmitCanMultiCon = 1 << 8

	cmdRead        = 0
	cmdWrite       = 1
	cmdDisc        = 2
	cmdFlush       = 3
	cmdTrim        = 4
	cmdWriteZeroes = 6

	errPerm  = 1
	errIO    = 5
	errInval = 22
)

// exportFlags says the export is read-only; FLUSH is advertised (and
// trivially succeeds) because QEMU flushes on close, and several connections
// may share the export because nothing is ever written.
const exportFlags = transmitHasFlags | transmitReadOnly | transmitSendFlush | transmitCanMultiCon

// sectorSize is what the announced size is rounded up to, with zeros past
// the ReaderAt's end. QEMU (7.2, the version here) rounds a device's size
// up to a sector and, for the last sector, asks the server for only the
// bytes that exist, but then waits for a whole sector of simple-reply data:
// an exact unaligned size hangs it (TestQEMUReadsUnalignedTail). The zeros are harmless to a qcow2 file,
// whose metadata never points past its real end, and are what QEMU itself
// shows past the end of an unaligned local file.
const sectorSize = 512

// Block sizes announced on request. A minimum of 1 says any byte range may
// be read; the maximum bounds the buffer one request can make this server
// allocate.
const (
	minBlock       = 1
	preferredBlock = 4096
	maxBlock       = 32 << 20
)

// Serve serves r (size bytes, read-only) on l until ctx ends or l is closed.
// The export is size rounded up to a multiple of 512, the padding reading as
// zeros (see sectorSize); r is never asked for bytes at or past size.
//
// Each accepted connection is handled in its own goroutine and ends on
// NBD_CMD_DISC, EOF or a protocol violation. When Serve stops it closes l
// and every open connection, and waits for their handlers, so r is no longer
// used once it has returned (a handler blocked in r.ReadAt is waited for).
// It returns nil when ctx ended or l was closed, else the Accept error.
func Serve(ctx context.Context, l net.Listener, r io.ReaderAt, size int64) error {
	if size < 0 {
		return fmt.Errorf("nbd: export size %d is negative", size)
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait() // runs after cancel: the handlers' connections are closed first
	defer cancel()
	defer l.Close()
	// Closing the listener is the only way to interrupt Accept.
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("nbd: accept on %s: %w", l.Addr(), err)
		}
		wg.Go(func() {
			// Closing the connection is the only way to interrupt a handler
			// blocked reading from its client.
			unhook := context.AfterFunc(ctx, func() { c.Close() })
			defer unhook()
			defer c.Close()
			serveConn(c, r, size)
		})
	}
}

// maxSocketPath is the room in sockaddr_un.sun_path, less the trailing NUL.
const maxSocketPath = 107

// Listen makes a unix socket listener at path for Serve. A socket file left
// behind by a crashed process is removed first; anything else at path, or a
// socket some live process still listens on, is refused rather than
// replaced. Closing the listener removes the socket file.
func Listen(path string) (net.Listener, error) {
	if len(path) > maxSocketPath {
		return nil, fmt.Errorf("nbd: socket path %s is %d bytes, more than the %d a unix socket allows; use a shorter directory", path, len(path), maxSocketPath)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("nbd: %s exists and is not a socket; not replacing it", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("nbd: another process is listening on %s", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("nbd: remove stale socket: %w", err)
		}
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("nbd: listen: %w", err)
	}
	return l, nil
}

// URI is the NBD URI QEMU takes as a filename or backing file for the export
// on the unix socket at path (any export name is accepted). Everything but
// unreserved characters and '/' is percent-escaped: QEMU's URI parser undoes
// %XX but, unlike url.QueryEscape's convention, not '+' for a space.
func URI(path string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.WriteString("nbd+unix:///?socket=")
	for i := 0; i < len(path); i++ {
		switch c := path[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '-', c == '.', c == '_', c == '~', c == '/':
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
	}
	return b.String()
}
