package engine

import (
	"context"
	"os"
)

// TestHoldEnv names a fault-injection seam for the kill tests, which must
// SIGKILL terraform or the provider at exact moments of an apply (between
// the rename of the output into place and Terraform recording the state is
// a window of microseconds otherwise). When it names a hold point, Apply
// stops there until its context ends, then carries on. Unset, it does
// nothing. Hold points: "before-publish-rename" (the report is written, the
// output is not in place yet) and "after-publish-rename" (the output is in
// place, Apply has not returned).
const TestHoldEnv = "VMCONV_TEST_HOLD"

func testHold(ctx context.Context, point string) {
	if os.Getenv(TestHoldEnv) == point {
		<-ctx.Done()
	}
}
