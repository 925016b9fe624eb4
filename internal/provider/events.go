package provider

import (
	"context"
	"strconv"

	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/vmconv/terraform-provider-vmconv/engine"
)

// logSink turns engine events into structured tflog entries. The engine
// never logs itself; this is the only place its progress reaches Terraform.
type logSink struct {
	ctx context.Context
}

func newLogSink(ctx context.Context, resource, id string) *logSink {
	ctx = tflog.SetField(ctx, "vmconv_resource", resource)
	ctx = tflog.SetField(ctx, "vmconv_id", id)
	return &logSink{ctx: ctx}
}

func (s *logSink) Event(e engine.Event) {
	fields := map[string]any{"event": string(e.Kind)}
	if e.Stage != "" {
		fields["stage"] = string(e.Stage)
	}
	for k, v := range e.Fields {
		fields[k] = logValue(v)
	}
	switch e.Kind {
	case engine.EventWarning:
		tflog.Warn(s.ctx, e.Message, fields)
	default:
		// Progress too: the engine spaces it (every 10 s for transfers,
		// 30 s for the appliance and the boot test), so INFO shows a long
		// apply moving, with rates and ETAs, without flooding.
		tflog.Info(s.ctx, e.Message, fields)
	}
}

// logValue keeps integers integers in Terraform's log. The provider's log
// reaches Terraform as JSON, whose numbers Terraform reads back as floats
// and prints as 2.424832e+06; a decimal string prints as 2424832.
func logValue(v any) any {
	switch n := v.(type) {
	case int:
		return strconv.FormatInt(int64(n), 10)
	case int64:
		return strconv.FormatInt(n, 10)
	case uint64:
		return strconv.FormatUint(n, 10)
	case int32:
		return strconv.FormatInt(int64(n), 10)
	case float64:
		if n == float64(int64(n)) {
			return strconv.FormatInt(int64(n), 10)
		}
		return strconv.FormatFloat(n, 'f', 2, 64)
	}
	return v
}
