// Package vcsimtest serves govmomi's vCenter simulator (simulator.VPX) over
// TLS on loopback, with real credentials, for tests of the vSphere code.
package vcsimtest

import (
	"crypto/tls"
	"net/url"
	"testing"

	"github.com/vmware/govmomi/simulator"
)

// Credentials the simulator checks.
const (
	User     = "migrator"
	Password = "s3cret-pa55"
)

// Server is a running simulator.
type Server struct {
	URL        string // https://127.0.0.1:port/sdk, no credentials
	Thumbprint string // SHA-1 of its self-signed certificate
}

// Start runs a VPX simulator (datacenter DC0, VMs DC0_H0_VM0...) until
// the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	m := simulator.VPX()
	if err := m.Create(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Remove)
	m.Service.TLS = new(tls.Config)
	m.Service.Listen = &url.URL{User: url.UserPassword(User, Password)}
	s := m.Service.NewServer()
	t.Cleanup(s.Close)
	u := url.URL{Scheme: s.URL.Scheme, Host: s.URL.Host, Path: s.URL.Path}
	return &Server{URL: u.String(), Thumbprint: s.CertificateInfo().ThumbprintSHA1}
}
