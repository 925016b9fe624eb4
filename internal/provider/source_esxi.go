package provider

import (
	"context"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/objectplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/vmconv/terraform-provider-vmconv/engine"
)

// esxiKind is a VMDK on an ESXi host's datastore, copied over SSH.
type esxiKind struct{}

type esxiModel struct {
	Host       types.String `tfsdk:"host"`
	User       types.String `tfsdk:"user"`
	PrivateKey types.String `tfsdk:"private_key"`
	HostKey    types.String `tfsdk:"host_key"`
	Path       types.String `tfsdk:"path"`
}

func (esxiKind) name() string { return "esxi_ssh" }

func (esxiKind) schema() kindSchema {
	return kindSchema{block: schema.SingleNestedBlock{
		MarkdownDescription: "A VMDK on an ESXi host's datastore, copied over SSH (SFTP) with its extents and snapshot parents into the cache: " +
			"resumed after an interruption, reused while unchanged. The host key must be pinned: an unknown or changed key is refused.",
		PlanModifiers: []planmodifier.Object{objectplanmodifier.RequiresReplace()},
		Attributes: map[string]schema.Attribute{
			"host": schema.StringAttribute{Required: true, MarkdownDescription: "The host, or host:port."},
			"user": schema.StringAttribute{Required: true, MarkdownDescription: "The SSH user, such as `root`."},
			"private_key": schema.StringAttribute{Required: true, Sensitive: true, WriteOnly: true,
				MarkdownDescription: "The SSH private key (PEM or OpenSSH, no passphrase). Write-only (Terraform 1.11+): never stored in the plan or state, never logged."},
			"host_key": schema.StringAttribute{Required: true,
				MarkdownDescription: "The host's public key as in `known_hosts` (`ssh-ed25519 AAAA...`) or its `SHA256:` fingerprint."},
			"path": schema.StringAttribute{Required: true, MarkdownDescription: "`[datastore] folder/file.vmdk`, or an absolute path on the host."},
		},
	}}
}

// spec takes the private key from the configuration: it is write-only.
func (esxiKind) spec(ctx context.Context, v attr.Value, in specInputs, s *engine.SourceSpec, diags *diag.Diagnostics) {
	var m esxiModel
	kindValue(ctx, v, &m, diags)
	s.ESXi = &engine.ESXiSpec{Host: m.Host.ValueString(), User: m.User.ValueString(), HostKey: m.HostKey.ValueString(), Path: m.Path.ValueString(),
		PrivateKey: configString(ctx, in.config, in.at.AtName("private_key"), diags)}
}

func (k esxiKind) fromSpec(ctx context.Context, s engine.SourceSpec, diags *diag.Diagnostics) (attr.Value, bool) {
	x := s.ESXi
	if x == nil {
		return nil, false
	}
	m := esxiModel{Host: types.StringValue(x.Host), User: types.StringValue(x.User), PrivateKey: types.StringNull(),
		HostKey: types.StringValue(x.HostKey), Path: types.StringValue(x.Path)}
	return kindObject(ctx, k, m, diags), true
}
