package nbd

import (
	"bytes"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

// client speaks the protocol byte by byte, so that tests can send what
// QEMU never would: write commands, bad magic, truncated options.
type client struct {
	t *testing.T
	c net.Conn
}

func dial(t *testing.T, sock string) *client {
	t.Helper()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	k := &client{t, c}
	hello := k.read(18)
	if be.Uint64(hello) != nbdMagic || be.Uint64(hello[8:]) != iHaveOpt || be.Uint16(hello[16:]) != flagFixedNewstyle|flagNoZeroes {
		t.Fatalf("server greeting % x", hello)
	}
	return k
}

func (k *client) read(n int) []byte {
	k.t.Helper()
	b := make([]byte, n)
	if _, err := io.ReadFull(k.c, b); err != nil {
		k.t.Fatalf("reading %d bytes: %v", n, err)
	}
	return b
}

func (k *client) write(parts ...[]byte) {
	k.t.Helper()
	if _, err := k.c.Write(bytes.Join(parts, nil)); err != nil {
		k.t.Fatal(err)
	}
}

func u16(v uint16) []byte { return be.AppendUint16(nil, v) }
func u32(v uint32) []byte { return be.AppendUint32(nil, v) }
func u64(v uint64) []byte { return be.AppendUint64(nil, v) }

func (k *client) option(opt uint32, data []byte) {
	k.write(u64(iHaveOpt), u32(opt), u32(uint32(len(data))), data)
}

// goData is NBD_OPT_GO/INFO data: export name and info requests.
func goData(name string, reqs ...uint16) []byte {
	b := append(u32(uint32(len(name))), name...)
	b = append(b, u16(uint16(len(reqs)))...)
	for _, r := range reqs {
		b = append(b, u16(r)...)
	}
	return b
}

func (k *client) optReply(wantOpt, wantType uint32) []byte {
	k.t.Helper()
	h := k.read(20)
	if be.Uint64(h) != optReplyMagic || be.Uint32(h[8:]) != wantOpt || be.Uint32(h[12:]) != wantType {
		k.t.Fatalf("option reply % x, want option %d type %#x", h, wantOpt, wantType)
	}
	return k.read(int(be.Uint32(h[16:])))
}

// start sends the client flags and then goes.
func (k *client) start(wantSize uint64) {
	k.t.Helper()
	k.write(u32(flagFixedNewstyle | flagNoZeroes))
	k.goes(wantSize)
}

// goes sends NBD_OPT_GO and checks the export's size and flags.
func (k *client) goes(wantSize uint64) {
	k.t.Helper()
	k.option(optGo, goData(""))
	info := k.optReply(optGo, repInfo)
	if !bytes.Equal(info, bytes.Join([][]byte{u16(infoExport), u64(wantSize), u16(exportFlags)}, nil)) {
		k.t.Fatalf("export info % x, want size %d flags %#x", info, wantSize, exportFlags)
	}
	k.optReply(optGo, repAck)
}

func (k *client) request(typ uint16, handle, off uint64, length uint32, payload []byte) {
	k.write(u32(requestMagic), u16(0), u16(typ), u64(handle), u64(off), u32(length), payload)
}

// reply reads a simple reply, with n bytes of data if it succeeded.
func (k *client) reply(handle uint64, n int) (errno uint32, data []byte) {
	k.t.Helper()
	h := k.read(16)
	if be.Uint32(h) != replyMagic || be.Uint64(h[8:]) != handle {
		k.t.Fatalf("reply % x, want handle %d", h, handle)
	}
	if errno = be.Uint32(h[4:]); errno == 0 && n > 0 {
		data = k.read(n)
	}
	return errno, data
}

// closed says whether the server closed the connection within 5s (a reset
// is a close too: Linux resets a unix socket closed with unread data).
func (k *client) closed() bool {
	k.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := k.c.Read(make([]byte, 1))
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
}

// content is 1000 bytes, deliberately not a multiple of 512.
var content = bytes.Repeat([]byte("abcdefghij"), 100)

func TestHandshake(t *testing.T) {
	sock := serve(t, bytes.NewReader(content), int64(len(content)))
	for _, tc := range []struct {
		name string
		do   func(k *client)
	}{
		{"go with block size and name requests", func(k *client) {
			k.write(u32(flagFixedNewstyle | flagNoZeroes))
			k.option(optGo, goData("any name", 1, infoBlockSize))
			k.optReply(optGo, repInfo)
			bs := k.optReply(optGo, repInfo)
			if !bytes.Equal(bs, bytes.Join([][]byte{u16(infoBlockSize), u32(1), u32(4096), u32(32 << 20)}, nil)) {
				t.Errorf("block size info % x", bs)
			}
			k.optReply(optGo, repAck)
		}},
		{"info then go", func(k *client) {
			k.write(u32(flagFixedNewstyle))
			k.option(optInfo, goData(""))
			k.optReply(optInfo, repInfo)
			k.optReply(optInfo, repAck) // no block size: it was not asked for
			k.option(optGo, goData(""))
			k.optReply(optGo, repInfo)
			k.optReply(optGo, repAck)
		}},
		{"structured replies refused", func(k *client) {
			k.write(u32(flagFixedNewstyle | flagNoZeroes))
			k.option(optStructuredReply, nil)
			k.optReply(optStructuredReply, repErrUnsup)
			k.goes(1024)
		}},
		{"list", func(k *client) {
			k.write(u32(flagFixedNewstyle | flagNoZeroes))
			k.option(optList, []byte("x"))
			k.optReply(optList, repErrInvalid)
			k.option(optList, nil)
			if name := k.optReply(optList, repServer); !bytes.Equal(name, u32(0)) {
				t.Errorf("export list entry % x", name)
			}
			k.optReply(optList, repAck)
			k.goes(1024)
		}},
		{"malformed go, then a good one", func(k *client) {
			k.write(u32(flagFixedNewstyle | flagNoZeroes))
			k.option(optGo, append(u32(50), "short"...))
			k.optReply(optGo, repErrInvalid)
			k.option(optGo, append(goData("", 1), 0)) // odd request list
			k.optReply(optGo, repErrInvalid)
			k.goes(1024)
		}},
		{"export name without zeroes", func(k *client) {
			k.write(u32(flagFixedNewstyle | flagNoZeroes))
			k.option(optExportName, []byte("whatever"))
			if b := k.read(10); be.Uint64(b) != 1024 || be.Uint16(b[8:]) != exportFlags {
				t.Errorf("export name reply % x", b)
			}
		}},
		{"export name with zeroes", func(k *client) {
			k.write(u32(flagFixedNewstyle))
			k.option(optExportName, nil)
			b := k.read(134)
			if be.Uint64(b) != 1024 || !bytes.Equal(b[10:], make([]byte, 124)) {
				t.Errorf("export name reply % x", b)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := dial(t, sock)
			k.t = t
			tc.do(k)
			// Whichever way in, the connection must now serve reads.
			k.request(cmdRead, 7, 10, 20, nil)
			if errno, data := k.reply(7, 20); errno != 0 || !bytes.Equal(data, content[10:30]) {
				t.Fatalf("read after handshake: errno %d data %q", errno, data)
			}
		})
	}
	t.Run("abort", func(t *testing.T) {
		k := dial(t, sock)
		k.t = t
		k.write(u32(flagFixedNewstyle | flagNoZeroes))
		k.option(optAbort, nil)
		k.optReply(optAbort, repAck)
		if !k.closed() {
			t.Fatal("connection still open after NBD_OPT_ABORT")
		}
	})
}

type failingReader struct{}

func (failingReader) ReadAt(p []byte, off int64) (int, error) {
	return 0, errors.New("upstream gone")
}

func TestTransmission(t *testing.T) {
	k := dial(t, serve(t, bytes.NewReader(content), int64(len(content))))
	k.start(1024)
	pad := func(b []byte, n int) []byte { return append(append([]byte{}, b...), make([]byte, n)...) }
	for _, tc := range []struct {
		name      string
		typ       uint16
		off       uint64
		length    uint32
		payload   []byte
		wantErrno uint32
		wantData  []byte
	}{
		{"read", cmdRead, 0, 1000, nil, 0, content},
		{"read across the end into the sector padding", cmdRead, 990, 34, nil, 0, pad(content[990:], 24)},
		{"read of padding only", cmdRead, 1000, 24, nil, 0, make([]byte, 24)},
		{"zero-length read", cmdRead, 5, 0, nil, 0, nil},
		{"read past the export", cmdRead, 1020, 8, nil, errInval, nil},
		{"read far past the export", cmdRead, 1 << 62, 1, nil, errInval, nil},
		{"read above the block size", cmdRead, 0, 32<<20 + 1, nil, errInval, nil},
		{"write refused, its payload consumed", cmdWrite, 0, 600, bytes.Repeat([]byte{0xff}, 600), errPerm, nil},
		{"trim refused", cmdTrim, 0, 512, nil, errPerm, nil},
		{"write zeroes refused", cmdWriteZeroes, 0, 512, nil, errPerm, nil},
		{"flush", cmdFlush, 0, 0, nil, 0, nil},
		{"unknown command", 99, 0, 0, nil, errInval, nil},
		{"read after all that", cmdRead, 0, 1000, nil, 0, content},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k.t = t
			handle := uint64(len(tc.name)) << 32
			k.request(tc.typ, handle, tc.off, tc.length, tc.payload)
			errno, data := k.reply(handle, len(tc.wantData))
			if errno != tc.wantErrno || !bytes.Equal(data, tc.wantData) {
				t.Fatalf("errno %d data %q, want errno %d data %q", errno, data, tc.wantErrno, tc.wantData)
			}
		})
	}
	t.Run("disconnect", func(t *testing.T) {
		k.t = t
		k.request(cmdDisc, 1, 0, 0, nil)
		if !k.closed() {
			t.Fatal("connection still open after NBD_CMD_DISC")
		}
	})
}

func TestUpstreamErrorIsEIO(t *testing.T) {
	k := dial(t, serve(t, failingReader{}, 4096))
	k.start(4096)
	for i := range uint64(2) { // the connection stays usable after an error
		k.request(cmdRead, i, 0, 512, nil)
		if errno, _ := k.reply(i, 512); errno != errIO {
			t.Fatalf("read %d of a failing upstream: errno %d, want EIO", i, errno)
		}
	}
}

// A broken client loses its own connection and nothing else: the server
// neither panics nor stops serving others.
func TestMalformedClients(t *testing.T) {
	sock := serve(t, bytes.NewReader(content), int64(len(content)))
	for _, tc := range []struct {
		name string
		do   func(k *client)
	}{
		{"client flags without fixed newstyle", func(k *client) { k.write(u32(0)) }},
		{"unknown client flags", func(k *client) { k.write(u32(flagFixedNewstyle | 1<<7)) }},
		{"garbage option magic", func(k *client) {
			k.write(u32(flagFixedNewstyle), []byte("GARBAGE!"), u32(optGo), u32(0))
		}},
		{"truncated option", func(k *client) {
			k.write(u32(flagFixedNewstyle), u64(iHaveOpt), u32(optGo), u32(100), []byte("only ten.."))
			k.c.(*net.UnixConn).CloseWrite()
		}},
		{"huge option", func(k *client) {
			k.write(u32(flagFixedNewstyle), u64(iHaveOpt), u32(optGo), u32(1<<30))
		}},
		{"garbage request magic", func(k *client) {
			k.start(1024)
			k.write(bytes.Repeat([]byte{0xee}, 28))
		}},
		{"truncated write payload", func(k *client) {
			k.start(1024)
			k.request(cmdWrite, 1, 0, 4096, []byte("short"))
			k.c.(*net.UnixConn).CloseWrite()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := dial(t, sock)
			k.t = t
			tc.do(k)
			if !k.closed() {
				t.Fatal("the server kept the broken connection open")
			}
			other := dial(t, sock)
			other.start(1024)
			other.request(cmdRead, 2, 0, 10, nil)
			if errno, data := other.reply(2, 10); errno != 0 || !bytes.Equal(data, content[:10]) {
				t.Fatalf("another client after the broken one: errno %d data %q", errno, data)
			}
		})
	}
}
