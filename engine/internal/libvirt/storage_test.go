package libvirt

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestWhenIdle(t *testing.T) {
	busy := errors.New("Requested operation is not valid: pool 'vmconv' has asynchronous jobs running.")
	t.Run("waits out a busy pool", func(t *testing.T) {
		calls := 0
		err := whenIdle(context.Background(), "vmconv", time.Millisecond, func() error {
			if calls++; calls < 4 {
				return busy
			}
			return nil
		})
		if err != nil || calls != 4 {
			t.Fatalf("err %v after %d calls", err, calls)
		}
	})
	t.Run("other errors at once", func(t *testing.T) {
		calls := 0
		other := errors.New("storage pool not found")
		if err := whenIdle(context.Background(), "vmconv", time.Millisecond, func() error { calls++; return other }); err != other || calls != 1 {
			t.Fatalf("err %v after %d calls", err, calls)
		}
	})
	t.Run("gives up with the context, saying why", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		err := whenIdle(ctx, "vmconv", time.Millisecond, func() error { return busy })
		if err == nil || !strings.Contains(err.Error(), "waiting for other publishes into pool vmconv") {
			t.Fatalf("err %v", err)
		}
	})
}
