package vsphere

import (
	"context"
	"time"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vmconv/terraform-provider-vmconv/engine/fault"
)

// PowerDown is how a VM was stopped for a cutover.
type PowerDown struct {
	// Requested is when the shutdown was asked for: a warm migration's
	// downtime starts there.
	Requested time.Time `json:"requested"`
	// Off is when the VM was seen powered off.
	Off time.Time `json:"off"`
	// How: "already off", "guest shutdown", or "power off" (the guest
	// did not shut down in time, or has no tools to ask it).
	How string `json:"how"`
}

// PowerDown stops a VM for a cutover: a guest shutdown, and a power off
// when the guest is not off within timeout.
func (c *Client) PowerDown(ctx context.Context, datacenter, name string, timeout time.Duration) (*PowerDown, error) {
	_, vm, err := c.findVM(ctx, datacenter, name)
	if err != nil {
		return nil, err
	}
	pd := &PowerDown{Requested: time.Now().UTC()}
	state, err := c.powerState(ctx, vm)
	if err != nil {
		return nil, err
	}
	if state == types.VirtualMachinePowerStatePoweredOff {
		pd.Off, pd.How = pd.Requested, "already off"
		return pd, nil
	}
	pd.How = "guest shutdown"
	if err := c.soap(ctx, func() error { return vm.ShutdownGuest(ctx) }); err != nil {
		pd.How = "power off" // no tools, or the guest refused: nothing to wait for
	} else {
		deadline := time.Now().Add(timeout)
		for time.Now().Before(deadline) {
			if state, err = c.powerState(ctx, vm); err == nil && state == types.VirtualMachinePowerStatePoweredOff {
				pd.Off = time.Now().UTC()
				return pd, nil
			}
			select {
			case <-ctx.Done():
				return nil, fault.Wrap(fault.Cancelled, name, ctx.Err(), "cancelled while waiting for the guest to shut down")
			case <-time.After(500 * time.Millisecond):
			}
		}
		pd.How = "power off"
	}
	if err := c.soap(ctx, func() error {
		t, err := vm.PowerOff(ctx)
		if err != nil {
			return err
		}
		return t.Wait(ctx)
	}); err != nil {
		if state, serr := c.powerState(ctx, vm); serr != nil || state != types.VirtualMachinePowerStatePoweredOff {
			return nil, fault.Wrap(fault.FetchFailed, name, err, "cannot power the VM off for the cutover").
				WithHint("Give the user the VirtualMachine.Interact.PowerOff privilege, or power the VM off, then run terraform apply again.")
		}
	}
	pd.Off = time.Now().UTC()
	return pd, nil
}

func (c *Client) powerState(ctx context.Context, vm *object.VirtualMachine) (types.VirtualMachinePowerState, error) {
	var m mo.VirtualMachine
	if err := c.soap(ctx, func() error { return vm.Properties(ctx, vm.Reference(), []string{"runtime.powerState"}, &m) }); err != nil {
		return "", fault.Wrap(fault.FetchFailed, vm.Reference().Value, err, "cannot read the VM's power state")
	}
	return m.Runtime.PowerState, nil
}

// PowerOn starts a VM again, after a cutover that failed once the VM was
// down: the migration can be retried, and the service is back meanwhile.
func (c *Client) PowerOn(ctx context.Context, datacenter, name string) error {
	_, vm, err := c.findVM(ctx, datacenter, name)
	if err != nil {
		return err
	}
	return c.soap(ctx, func() error {
		t, err := vm.PowerOn(ctx)
		if err != nil {
			return err
		}
		return t.Wait(ctx)
	})
}
