package provider

import (
	"context"
	"path/filepath"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/identityschema"
	"github.com/hashicorp/terraform-plugin-framework/tfsdk"
	"github.com/hashicorp/terraform-plugin-framework/types"
)

// A conversion's identity (Terraform 1.12+, OpenTofu 1.12+) is where its
// output is: a file (or a VM's folder) on this machine, or a pool and
// volume on the provider's libvirt host. It says the same as the import ID
// ("/var/lib/vmconv/web.qcow2", "volume:<pool>/<volume>"), as attributes an
// import block can name:
//
//	import {
//	  to       = vmconv_disk_conversion.web
//	  identity = { path = "/var/lib/vmconv/web.qcow2" }
//	}

// outputIdentitySchema is a conversion's identity: fileAttr (path, or a
// VM's dir), or pool and volume.
func outputIdentitySchema(fileAttr, fileDoc, volumeDoc string) identityschema.Schema {
	return identityschema.Schema{Attributes: map[string]identityschema.Attribute{
		fileAttr: identityschema.StringAttribute{OptionalForImport: true, Description: fileDoc + " Set it, or pool and volume."},
		"pool":   identityschema.StringAttribute{OptionalForImport: true, Description: "The storage pool on the provider's libvirt host, with volume."},
		"volume": identityschema.StringAttribute{OptionalForImport: true, Description: volumeDoc},
	}}
}

// setOutputIdentity records the identity an output's ID names.
func setOutputIdentity(ctx context.Context, id string, fileAttr string, identity *tfsdk.ResourceIdentity) diag.Diagnostics {
	if identity == nil || id == "" {
		return nil
	}
	file, pool, volume := types.StringValue(id), types.StringNull(), types.StringNull()
	if rest, ok := strings.CutPrefix(id, volumeImportPrefix); ok {
		if p, v, ok := strings.Cut(rest, "/"); ok {
			file, pool, volume = types.StringNull(), types.StringValue(p), types.StringValue(v)
		}
	}
	var diags diag.Diagnostics
	diags.Append(identity.SetAttribute(ctx, path.Root(fileAttr), file)...)
	diags.Append(identity.SetAttribute(ctx, path.Root("pool"), pool)...)
	diags.Append(identity.SetAttribute(ctx, path.Root("volume"), volume)...)
	return diags
}

// importOutputID is the ID an import names: the import ID, or the
// identity's attributes. A file path is made absolute, as the ID is.
func importOutputID(ctx context.Context, req resource.ImportStateRequest, fileAttr string, diags *diag.Diagnostics) string {
	id := req.ID
	if id == "" && req.Identity != nil {
		var file, pool, volume types.String
		diags.Append(req.Identity.GetAttribute(ctx, path.Root(fileAttr), &file)...)
		diags.Append(req.Identity.GetAttribute(ctx, path.Root("pool"), &pool)...)
		diags.Append(req.Identity.GetAttribute(ctx, path.Root("volume"), &volume)...)
		switch {
		case file.ValueString() != "" && pool.IsNull() && volume.IsNull():
			id = file.ValueString()
		case file.IsNull() && pool.ValueString() != "" && volume.ValueString() != "":
			id = volumeImportPrefix + pool.ValueString() + "/" + volume.ValueString()
		default:
			diags.AddError("Invalid Import Identity",
				"The identity names the output by "+fileAttr+" (a "+fileAttr+" on this machine), or by pool and volume (on the provider's libvirt host): set one of the two, "+
					"for example identity = { "+fileAttr+" = \"/var/lib/vmconv/web\" }.")
			return ""
		}
	}
	if abs, err := filepath.Abs(id); err == nil && !strings.HasPrefix(id, volumeImportPrefix) {
		id = abs
	}
	return id
}
