package provider

import (
	"context"

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
	if e.Kind == engine.EventProgress {
		fields["percent"] = e.Percent
	}
	for k, v := range e.Fields {
		fields[k] = v
	}
	switch e.Kind {
	case engine.EventWarning:
		tflog.Warn(s.ctx, e.Message, fields)
	case engine.EventProgress:
		tflog.Debug(s.ctx, e.Message, fields)
	default:
		tflog.Info(s.ctx, e.Message, fields)
	}
}
