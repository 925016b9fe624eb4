// Package vcsimtest serves govmomi's vCenter simulator (simulator.VPX) over
// TLS on loopback, with real credentials, for tests of the vSphere code.
package vcsimtest

import (
	"context"
	"crypto/tls"
	"net/url"
	"testing"

	"github.com/vmware/govmomi/property"
	"github.com/vmware/govmomi/session"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
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
	Model      *simulator.Model
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
	return &Server{URL: u.String(), Thumbprint: s.CertificateInfo().ThumbprintSHA1, Model: m}
}

// VM returns the simulator's own object for a VM, to change what the
// simulated vCenter reports.
func (s *Server) VM(name string) *simulator.VirtualMachine {
	for _, o := range s.Model.Map().All("VirtualMachine") {
		if vm, ok := o.(*simulator.VirtualMachine); ok && vm.Name == name {
			return vm
		}
	}
	return nil
}

// DatastoreDir is the local folder that backs a datastore.
func (s *Server) DatastoreDir(name string) string {
	for _, o := range s.Model.Map().All("Datastore") {
		if ds, ok := o.(*simulator.Datastore); ok && ds.Name == name {
			return ds.Summary.Url
		}
	}
	return ""
}

// EndOtherSessions ends every session but a fresh administrator's own, as
// a session expiry or an administrator would: clients must log in again.
func (s *Server) EndOtherSessions(ctx context.Context) error {
	u, _ := url.Parse(s.URL)
	sc := soap.NewClient(u, false)
	sc.SetThumbprint(u.Host, s.Thumbprint)
	vc, err := vim25.NewClient(ctx, sc)
	if err != nil {
		return err
	}
	sm := session.NewManager(vc)
	if err := sm.Login(ctx, url.UserPassword(User, Password)); err != nil {
		return err
	}
	defer sm.Logout(ctx)
	own, err := sm.UserSession(ctx)
	if err != nil {
		return err
	}
	var m mo.SessionManager
	if err := property.DefaultCollector(vc).RetrieveOne(ctx, sm.Reference(), []string{"sessionList"}, &m); err != nil {
		return err
	}
	var ids []string
	for _, us := range m.SessionList {
		if us.Key != own.Key {
			ids = append(ids, us.Key)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	return sm.TerminateSession(ctx, ids)
}
