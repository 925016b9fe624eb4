// Package esxissh copies a VMDK, its extents and its snapshot parents from
// an ESXi host over SSH (SFTP), with the host key pinned: an unknown key is
// refused, a changed one too. Copies resume where they stopped.
package esxissh

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/engine/progress"
	"github.com/vmconv/terraform-provider-vmconv/engine/vmdk"
)

// Options is how to reach the host.
type Options struct {
	// Host is host or host:port (port 22 by default).
	Host string
	User string
	// PrivateKey is a PEM or OpenSSH private key. Never logged.
	PrivateKey string
	// HostKey pins the server: its public key as in known_hosts
	// ("ssh-ed25519 AAAA...") or its SHA256 fingerprint ("SHA256:...").
	HostKey string
	// Progress, when set, receives each copy's progress reports.
	Progress func(remote string, r progress.Report)
}

// Client is an SFTP session on the host.
type Client struct {
	ssh  *ssh.Client
	sftp *sftp.Client
	host string
	prog func(string, progress.Report)
}

// Fingerprint is a key's SHA256 fingerprint as ssh-keygen -l prints it.
func Fingerprint(k ssh.PublicKey) string {
	h := sha256.Sum256(k.Marshal())
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(h[:])
}

// Dial connects and checks the host key.
func Dial(ctx context.Context, o Options) (*Client, error) {
	addr := o.Host
	if _, _, err := net.SplitHostPort(addr); err != nil {
		addr = net.JoinHostPort(addr, "22")
	}
	signer, err := ssh.ParsePrivateKey([]byte(o.PrivateKey))
	if err != nil {
		return nil, fault.New(fault.AuthFailed, o.Host, "the private key does not parse (%s)", keyError(err)).
			WithHint("Give the private key in PEM or OpenSSH format, without a passphrase.")
	}
	pinned, err := parsePin(o.HostKey)
	if err != nil {
		return nil, err
	}
	var seen ssh.PublicKey
	cfg := &ssh.ClientConfig{
		User: o.User,
		Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error {
			seen = key
			if pinned == "" || !pinMatches(pinned, key) {
				return errHostKey
			}
			return nil
		},
		Timeout: 30 * time.Second,
	}
	d := net.Dialer{Timeout: cfg.Timeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fault.Wrap(fault.FetchFailed, o.Host, err, "cannot reach the ESXi host over SSH").WithHint("Check host and that SSH is enabled on it.")
	}
	c, chans, reqs, err := ssh.NewClientConn(conn, addr, cfg)
	if err != nil {
		conn.Close()
		if seen != nil && (pinned == "" || !pinMatches(pinned, seen)) {
			if pinned == "" {
				return nil, fault.New(fault.HostKeyMismatch, o.Host, "the host's SSH key (%s %s) is not pinned", seen.Type(), Fingerprint(seen)).
					WithHint("Check the fingerprint on the host's console (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub), then set host_key = \"%s\".", Fingerprint(seen))
			}
			return nil, fault.New(fault.HostKeyMismatch, o.Host, "the host's SSH key (%s %s) is not the pinned one", seen.Type(), Fingerprint(seen)).
				WithHint("The host was reinstalled, or the connection is intercepted. Verify the new key on the host before you change host_key.")
		}
		return nil, fault.Wrap(fault.AuthFailed, o.Host, err, "the host refused the SSH login of %q", o.User).WithHint("Check user and private_key.")
	}
	sc := ssh.NewClient(c, chans, reqs)
	fc, err := sftp.NewClient(sc)
	if err != nil {
		sc.Close()
		return nil, fault.Wrap(fault.FetchFailed, o.Host, err, "the host offers no SFTP").WithHint("Enable SFTP on the host's SSH server.")
	}
	return &Client{ssh: sc, sftp: fc, host: o.Host, prog: o.Progress}, nil
}

var errHostKey = fmt.Errorf("host key not trusted")

func keyError(err error) string {
	s := err.Error()
	if strings.Contains(s, "passphrase") {
		return "it is protected by a passphrase"
	}
	return "not a supported key"
}

func parsePin(p string) (string, error) {
	p = strings.TrimSpace(p)
	switch {
	case p == "":
		return "", nil
	case strings.HasPrefix(p, "SHA256:"):
		return p, nil
	}
	f := strings.Fields(p)
	for i := range f {
		if k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(strings.Join(f[i:], " "))); err == nil {
			return Fingerprint(k), nil
		}
	}
	return "", fault.New(fault.InvalidRequest, "", "host_key is neither a public key (\"ssh-ed25519 AAAA...\") nor a SHA256 fingerprint")
}

func pinMatches(pin string, k ssh.PublicKey) bool { return pin == Fingerprint(k) }

// Close ends the session.
func (c *Client) Close() error {
	c.sftp.Close()
	return c.ssh.Close()
}

// RemotePath turns "[datastore1] web/web.vmdk" into the ESXi path under
// /vmfs/volumes; an absolute path is kept.
func RemotePath(p string) (string, error) {
	p = strings.TrimSpace(p)
	if strings.HasPrefix(p, "[") {
		i := strings.Index(p, "]")
		if i < 0 {
			return "", fault.New(fault.InvalidRequest, p, "not a datastore path: \"[datastore] folder/file.vmdk\"")
		}
		return path.Join("/vmfs/volumes", p[1:i], strings.TrimSpace(p[i+1:])), nil
	}
	if !path.IsAbs(p) {
		return "", fault.New(fault.InvalidRequest, p, "the path must be \"[datastore] folder/file.vmdk\" or absolute")
	}
	return path.Clean(p), nil
}

// Stat describes the remote chain's files without copying them: for plans.
func (c *Client) Stat(head string) ([]FileInfo, error) { return c.stat(head, nil) }

// check vets each file of a chain before it is read; nil accepts all.
type check func(remote string, fi os.FileInfo) error

func (c *Client) stat(head string, ok check) (files []FileInfo, err error) {
	err = c.walk(head, func(remote string, fi os.FileInfo) error {
		if ok != nil {
			if err := ok(remote, fi); err != nil {
				return err
			}
		}
		files = append(files, FileInfo{Path: remote, Size: fi.Size(), ModTime: fi.ModTime().UTC()})
		return nil
	})
	return files, err
}

// FileInfo is one remote file.
type FileInfo struct {
	Path    string    `json:"path"`
	Size    int64     `json:"size"`
	ModTime time.Time `json:"mod_time"`
}

// Fetched says what a copy did.
type Fetched struct {
	Head  string   `json:"head"`
	Files []string `json:"files"`
	// Remote is each file as the host reported it, in Files' order.
	Remote  []FileInfo `json:"remote"`
	Reused  int        `json:"reused"`
	Resumed int        `json:"resumed"`
}

// Fetch copies the chain starting at head into dir.
func (c *Client) Fetch(ctx context.Context, head, dir string) (*Fetched, error) {
	return c.fetch(ctx, head, dir, nil)
}

func (c *Client) fetch(ctx context.Context, head, dir string, ok check) (*Fetched, error) {
	res := &Fetched{}
	err := c.walk(head, func(remote string, fi os.FileInfo) error {
		if ctx.Err() != nil {
			return fault.Wrap(fault.Cancelled, remote, ctx.Err(), "the copy was interrupted").WithHint("Run terraform apply again: it resumes.")
		}
		if ok != nil {
			if err := ok(remote, fi); err != nil {
				return err
			}
		}
		local := filepath.Join(dir, path.Base(remote))
		if res.Head == "" {
			res.Head = local
		}
		res.Remote = append(res.Remote, FileInfo{Path: remote, Size: fi.Size(), ModTime: fi.ModTime().UTC()})
		return c.copyFile(ctx, remote, fi, local, res)
	})
	return res, err
}

// walk visits the descriptor at head, its extents and its parents.
func (c *Client) walk(head string, visit func(remote string, fi os.FileInfo) error) error {
	seen := map[string]bool{}
	cur := head
	for cur != "" {
		if seen[cur] {
			return fault.New(fault.ChainLoop, cur, "the snapshot chain on the host loops back to %s", path.Base(cur))
		}
		seen[cur] = true
		fi, err := c.sftp.Stat(cur)
		if err != nil {
			return fault.Wrap(fault.RemoteNotFound, cur, err, "the file is not on the host").WithHint("Check path.")
		}
		// Opening a FIFO would block the host's SFTP server for good, and a
		// device never ends: only regular files are read.
		if !fi.Mode().IsRegular() {
			return fault.New(fault.SourceUnreadable, cur, "the file on the host is not a regular file (%s)", fi.Mode().Type()).
				WithHint("Point the source at the disk's .vmdk on the datastore.")
		}
		if err := visit(cur, fi); err != nil {
			return err
		}
		b, err := c.readHead(cur, 64<<10)
		if err != nil {
			return err
		}
		if !vmdk.LooksLikeDescriptor(b) {
			return nil // a monolithic sparse disk: one file
		}
		d, err := vmdk.ParseDescriptor(b)
		if err != nil {
			return fault.Wrap(fault.CorruptDescriptor, cur, err, "the descriptor on the host is not valid")
		}
		for _, x := range d.Extents {
			if x.Filename == "" {
				continue
			}
			if strings.Contains(x.Filename, "/") {
				return fault.New(fault.PathOutsideSource, cur, "extent %q is outside the disk's folder", x.Filename)
			}
			ext := path.Join(path.Dir(cur), x.Filename)
			efi, err := c.sftp.Stat(ext)
			if err != nil {
				return fault.Wrap(fault.ChainParentMissing, cur, err, "extent %s is missing on the host", x.Filename)
			}
			if !efi.Mode().IsRegular() {
				return fault.New(fault.SourceUnreadable, ext, "extent %s on the host is not a regular file (%s)", x.Filename, efi.Mode().Type())
			}
			if err := visit(ext, efi); err != nil {
				return err
			}
		}
		cur = ""
		if hint := d.ParentFileNameHint; hint != "" {
			if strings.Contains(hint, "/") {
				return fault.New(fault.PathOutsideSource, hint, "the parent %q is outside the disk's folder", hint).
					WithHint("Consolidate the VM's snapshots, or move the chain into one folder.")
			}
			cur = path.Join(path.Dir(head), hint)
		}
	}
	return nil
}

func (c *Client) readHead(p string, n int) ([]byte, error) {
	f, err := c.sftp.Open(p)
	if err != nil {
		return nil, fault.Wrap(fault.SourceUnreadable, p, err, "cannot read the file on the host")
	}
	defer f.Close()
	b := make([]byte, n)
	k, err := io.ReadFull(f, b)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return nil, fault.Wrap(fault.SourceUnreadable, p, err, "cannot read the file on the host")
	}
	return b[:k], nil
}

type record struct {
	Size    int64     `json:"size"`
	ModTime time.Time `json:"mod_time"`
}

// copyFile copies one file, resuming a partial copy of the same remote
// file and reusing a complete one.
func (c *Client) copyFile(ctx context.Context, remote string, fi os.FileInfo, local string, res *Fetched) error {
	want := record{Size: fi.Size(), ModTime: fi.ModTime().UTC()}
	var have record
	if b, err := os.ReadFile(local + ".json"); err == nil && json.Unmarshal(b, &have) == nil && have == want {
		if lfi, err := os.Stat(local); err == nil && lfi.Size() == want.Size {
			res.Reused++
			res.Files = append(res.Files, local)
			return nil
		}
	}
	part := local + ".part"
	var off int64
	if b, err := os.ReadFile(part + ".json"); err == nil && json.Unmarshal(b, &have) == nil && have == want {
		if pfi, err := os.Stat(part); err == nil {
			off = pfi.Size()
		}
	}
	rec, _ := json.Marshal(want)
	if err := os.WriteFile(part+".json", rec, 0o644); err != nil {
		return fault.Wrap(fault.OutputNotWritable, part, err, "cannot record the copy")
	}
	src, err := c.sftp.Open(remote)
	if err != nil {
		return fault.Wrap(fault.SourceUnreadable, remote, err, "cannot open the file on the host")
	}
	defer src.Close()
	flags := os.O_WRONLY | os.O_CREATE
	if off == 0 {
		flags |= os.O_TRUNC
	} else {
		res.Resumed++
	}
	dst, err := os.OpenFile(part, flags, 0o644)
	if err != nil {
		return fault.Wrap(fault.OutputNotWritable, part, err, "cannot write the copy")
	}
	if _, err := src.Seek(off, io.SeekStart); err != nil {
		dst.Close()
		return fault.Wrap(fault.FetchFailed, remote, err, "cannot resume the copy")
	}
	if _, err := dst.Seek(off, io.SeekStart); err != nil {
		dst.Close()
		return err
	}
	var in io.Reader = &ctxReader{ctx, src}
	if c.prog != nil {
		in = &progress.Reader{R: in, Done: off, Total: want.Size, Meter: &progress.Meter{}, Report: func(r progress.Report) { c.prog(remote, r) }}
	}
	n, err := io.Copy(dst, in)
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fault.Wrap(fault.FetchFailed, remote, err, "the copy stopped after %d bytes", off+n).WithHint("Run terraform apply again: it resumes where it stopped.")
	}
	if off+n != want.Size {
		return fault.New(fault.FetchFailed, remote, "copied %d bytes of %d: the file changed on the host during the copy", off+n, want.Size)
	}
	if err := os.Rename(part, local); err != nil {
		return err
	}
	os.Rename(part+".json", local+".json")
	res.Files = append(res.Files, local)
	return nil
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
