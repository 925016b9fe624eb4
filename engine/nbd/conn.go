package nbd

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
)

var be = binary.BigEndian

// errAbort ends the handshake at the client's request (NBD_OPT_ABORT).
var errAbort = errors.New("nbd: client aborted the handshake")

// maxOptionLen bounds an option's payload: a name is at most 4 KiB by the
// protocol, so anything far larger is a broken or hostile client.
const maxOptionLen = 64 << 10

// conn is one client connection. Requests are handled one at a time: QEMU
// pipelines them, but they are answered in order, which the protocol
// allows, and it keeps replies from interleaving without a write lock.
type conn struct {
	rd       *bufio.Reader
	wr       *bufio.Writer
	r        io.ReaderAt
	size     int64 // bytes r has
	export   int64 // size announced: size rounded up to a sector, see sectorSize
	noZeroes bool
	buf      []byte // read buffer, reused across requests
}

// serveConn runs the handshake and then the transmission phase. Any error
// ends the connection: the client broke the protocol or went away, and a
// close is the only answer the protocol has for either.
func serveConn(nc net.Conn, r io.ReaderAt, size int64) {
	c := &conn{rd: bufio.NewReaderSize(nc, 64<<10), wr: bufio.NewWriterSize(nc, 64<<10), r: r, size: size,
		export: (size + sectorSize - 1) &^ (sectorSize - 1)}
	if err := c.handshake(); err != nil {
		return
	}
	c.transmit()
}

func (c *conn) handshake() error {
	var hello [18]byte
	be.PutUint64(hello[0:], nbdMagic)
	be.PutUint64(hello[8:], iHaveOpt)
	be.PutUint16(hello[16:], flagFixedNewstyle|flagNoZeroes)
	if _, err := c.wr.Write(hello[:]); err != nil {
		return err
	}
	if err := c.wr.Flush(); err != nil {
		return err
	}
	var cf [4]byte
	if _, err := io.ReadFull(c.rd, cf[:]); err != nil {
		return err
	}
	flags := be.Uint32(cf[:])
	// The protocol requires closing on client flags we did not offer; a
	// client without FIXED_NEWSTYLE would misread our error replies.
	if flags&^(flagFixedNewstyle|flagNoZeroes) != 0 || flags&flagFixedNewstyle == 0 {
		return fmt.Errorf("nbd: client flags %#x", flags)
	}
	c.noZeroes = flags&flagNoZeroes != 0
	for {
		var hdr [16]byte
		if _, err := io.ReadFull(c.rd, hdr[:]); err != nil {
			return err
		}
		if m := be.Uint64(hdr[0:]); m != iHaveOpt {
			return fmt.Errorf("nbd: option magic %#x", m)
		}
		opt, n := be.Uint32(hdr[8:]), be.Uint32(hdr[12:])
		if n > maxOptionLen {
			return fmt.Errorf("nbd: option %d has %d bytes of data", opt, n)
		}
		data := make([]byte, n)
		if _, err := io.ReadFull(c.rd, data); err != nil {
			return err
		}
		done, err := c.option(opt, data)
		// Flushed even on error: the reply to NBD_OPT_ABORT precedes the close.
		if ferr := c.wr.Flush(); err == nil {
			err = ferr
		}
		if err != nil || done {
			return err
		}
	}
}

// option answers one option; done means the transmission phase begins.
func (c *conn) option(opt uint32, data []byte) (done bool, err error) {
	switch opt {
	case optExportName:
		// The old way in: no option reply, just the export's size and flags.
		// Every name is accepted, since there is only one export.
		b := make([]byte, 10, 134)
		be.PutUint64(b[0:], uint64(c.export))
		be.PutUint16(b[8:], exportFlags)
		if !c.noZeroes {
			b = b[:134]
		}
		_, err := c.wr.Write(b)
		return true, err
	case optAbort:
		if err := c.reply(opt, repAck, nil); err != nil {
			return false, err
		}
		return false, errAbort
	case optList:
		if len(data) != 0 {
			return false, c.reply(opt, repErrInvalid, []byte("NBD_OPT_LIST takes no data"))
		}
		if err := c.reply(opt, repServer, []byte{0, 0, 0, 0}); err != nil { // one export, named ""
			return false, err
		}
		return false, c.reply(opt, repAck, nil)
	case optInfo, optGo:
		reqs, ok := parseInfoRequest(data)
		if !ok {
			return false, c.reply(opt, repErrInvalid, []byte("malformed info request"))
		}
		info := make([]byte, 12)
		be.PutUint16(info[0:], infoExport)
		be.PutUint64(info[2:], uint64(c.export))
		be.PutUint16(info[10:], exportFlags)
		if err := c.reply(opt, repInfo, info); err != nil {
			return false, err
		}
		for _, q := range reqs {
			if q != infoBlockSize {
				continue // name and description are optional; nothing else is known
			}
			bs := make([]byte, 14)
			be.PutUint16(bs[0:], infoBlockSize)
			be.PutUint32(bs[2:], minBlock)
			be.PutUint32(bs[6:], preferredBlock)
			be.PutUint32(bs[10:], maxBlock)
			if err := c.reply(opt, repInfo, bs); err != nil {
				return false, err
			}
			break
		}
		return opt == optGo, c.reply(opt, repAck, nil)
	default:
		// Includes NBD_OPT_STRUCTURED_REPLY: refusing it keeps QEMU on
		// simple replies, and meta contexts and TLS are not offered.
		return false, c.reply(opt, repErrUnsup, nil)
	}
}

// parseInfoRequest checks the layout of NBD_OPT_INFO/GO data (name length,
// name, request count, requests) and returns the requested info types.
func parseInfoRequest(d []byte) ([]uint16, bool) {
	if len(d) < 4 {
		return nil, false
	}
	nameLen, rest := uint64(be.Uint32(d)), d[4:]
	if nameLen > uint64(len(rest)) {
		return nil, false
	}
	rest = rest[nameLen:]
	if len(rest) < 2 {
		return nil, false
	}
	count := int(be.Uint16(rest))
	rest = rest[2:]
	if len(rest) != 2*count {
		return nil, false
	}
	reqs := make([]uint16, count)
	for i := range reqs {
		reqs[i] = be.Uint16(rest[2*i:])
	}
	return reqs, true
}

func (c *conn) reply(opt, typ uint32, data []byte) error {
	var h [20]byte
	be.PutUint64(h[0:], optReplyMagic)
	be.PutUint32(h[8:], opt)
	be.PutUint32(h[12:], typ)
	be.PutUint32(h[16:], uint32(len(data)))
	if _, err := c.wr.Write(h[:]); err != nil {
		return err
	}
	_, err := c.wr.Write(data)
	return err
}

// transmit answers requests until NBD_CMD_DISC, EOF or a request that
// cannot be parsed (after a bad magic the stream cannot be resynchronised).
func (c *conn) transmit() {
	var req [28]byte
	for {
		if _, err := io.ReadFull(c.rd, req[:]); err != nil {
			return
		}
		if be.Uint32(req[0:]) != requestMagic {
			return
		}
		typ := be.Uint16(req[6:])
		handle := be.Uint64(req[8:])
		off, length := be.Uint64(req[16:]), be.Uint32(req[24:])
		var err error
		switch typ {
		case cmdRead:
			err = c.read(handle, off, length)
		case cmdWrite:
			// The payload follows the header whatever the answer; it must be
			// consumed or it would be parsed as the next request.
			if _, err = io.CopyN(io.Discard, c.rd, int64(length)); err == nil {
				err = c.simple(handle, errPerm, nil)
			}
		case cmdDisc:
			return
		case cmdFlush:
			err = c.simple(handle, 0, nil)
		case cmdTrim, cmdWriteZeroes:
			err = c.simple(handle, errPerm, nil)
		default:
			err = c.simple(handle, errInval, nil)
		}
		if err != nil {
			return
		}
	}
}

func (c *conn) read(handle, off uint64, length uint32) error {
	// Out of range is the client's mistake (EINVAL, as the protocol
	// suggests).
	if length > maxBlock || off > uint64(c.export) || uint64(length) > uint64(c.export)-off {
		return c.simple(handle, errInval, nil)
	}
	if cap(c.buf) < int(length) {
		c.buf = make([]byte, length)
	}
	b := c.buf[:length]
	// Only the sector padding past size is made up; r is never asked for it.
	have := b[:max(0, min(int64(length), c.size-int64(off)))]
	clear(b[len(have):])
	// A simple reply carries its error before the data, so the whole range
	// is read before anything is sent.
	if n, _ := c.r.ReadAt(have, int64(off)); n < len(have) {
		return c.simple(handle, errIO, nil)
	}
	return c.simple(handle, 0, b)
}

func (c *conn) simple(handle uint64, errno uint32, data []byte) error {
	var h [16]byte
	be.PutUint32(h[0:], replyMagic)
	be.PutUint32(h[4:], errno)
	be.PutUint64(h[8:], handle)
	if _, err := c.wr.Write(h[:]); err != nil {
		return err
	}
	if _, err := c.wr.Write(data); err != nil {
		return err
	}
	return c.wr.Flush()
}
