package vsphere

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
	"github.com/vmconv/terraform-provider-vmconv/internal/vcsimtest"
)

func vcsim(t *testing.T) (u *url.URL, user, pass, thumb string) {
	s := vcsimtest.Start(t)
	u, _ = url.Parse(s.URL)
	return u, vcsimtest.User, vcsimtest.Password, s.Thumbprint
}

func TestFindVMAgainstVcsim(t *testing.T) {
	u, user, pass, thumb := vcsim(t)
	ctx := context.Background()
	c, err := Connect(ctx, Options{URL: u.String(), Username: user, Password: pass, Thumbprint: thumb})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Logout(ctx)
	vm, err := c.FindVM(ctx, "DC0", "DC0_H0_VM0")
	if err != nil {
		t.Fatal(err)
	}
	if vm.Name != "DC0_H0_VM0" || vm.CPUs < 1 || vm.MemoryMiB < 32 || vm.UUID == "" || vm.GuestID == "" {
		t.Errorf("vm %+v", vm)
	}
	if len(vm.Disks) == 0 || len(vm.Disks[0].Chain) == 0 || !strings.HasPrefix(vm.Disks[0].Chain[0], "[LocalDS_0] ") || vm.Disks[0].Datastore != "LocalDS_0" {
		t.Errorf("disks %+v", vm.Disks)
	}
	if len(vm.NICs) == 0 || vm.NICs[0].MAC == "" || vm.NICs[0].Network == "" {
		t.Errorf("nics %+v", vm.NICs)
	}
	if _, err := c.FindVM(ctx, "DC0", "no-such-vm"); fault.CodeOf(err) != fault.RemoteNotFound {
		t.Errorf("missing VM: %v", err)
	}
}

func TestConnectRefusals(t *testing.T) {
	u, user, pass, _ := vcsim(t)
	ctx := context.Background()
	// An untrusted certificate without a pinned thumbprint.
	if _, err := Connect(ctx, Options{URL: u.String(), Username: user, Password: pass}); fault.CodeOf(err) != fault.HostKeyMismatch {
		t.Errorf("untrusted certificate: %v", err)
	}
	// A pinned thumbprint that is not the server's.
	_, err := Connect(ctx, Options{URL: u.String(), Username: user, Password: pass, Thumbprint: strings.Repeat("AB:", 19) + "AB"})
	if fault.CodeOf(err) != fault.HostKeyMismatch {
		t.Errorf("wrong thumbprint: %v", err)
	}
	// A wrong password: refused, and the password is in no message.
	_, err = Connect(ctx, Options{URL: u.String(), Username: user, Password: "wr0ng-secret", Insecure: true})
	if fault.CodeOf(err) != fault.AuthFailed || strings.Contains(err.Error(), "wr0ng-secret") {
		t.Errorf("wrong password: %v", err)
	}
}
