package provider

import (
	"context"

	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/vmconv/terraform-provider-vmconv/engine"
)

var (
	_ datasource.DataSource              = &diskInfoDataSource{}
	_ datasource.DataSourceWithConfigure = &diskInfoDataSource{}
)

// NewDiskInfoDataSource is the vmconv_disk_info constructor.
func NewDiskInfoDataSource() datasource.DataSource { return &diskInfoDataSource{} }

type diskInfoDataSource struct {
	data *providerData
}

type diskInfoModel struct {
	Path                   types.String `tfsdk:"path"`
	Format                 types.String `tfsdk:"format"`
	AllowParentCIDMismatch types.Bool   `tfsdk:"allow_parent_cid_mismatch"`
	Inspect                types.Bool   `tfsdk:"inspect"`
	ID                     types.String `tfsdk:"id"`
	SourceFormat           types.String `tfsdk:"source_format"`
	Subformat              types.String `tfsdk:"subformat"`
	Chain                  types.List   `tfsdk:"chain"`
	VirtualSize            types.Int64  `tfsdk:"virtual_size"`
	FileSize               types.Int64  `tfsdk:"file_size"`
	Fingerprint            types.String `tfsdk:"fingerprint"`
	Inspection             types.String `tfsdk:"inspection"`
	Guest                  types.Object `tfsdk:"guest"`
	Warnings               types.List   `tfsdk:"warnings"`
}

func (d *diskInfoDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_disk_info"
}

func (d *diskInfoDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "Describes a disk without converting it: its format, snapshot chain, sizes and fingerprint and, by inspecting it " +
			"read-only with libguestfs, the guest on it. The source is never written; inspections are cached by fingerprint.",
		Attributes: map[string]schema.Attribute{
			"path": schema.StringAttribute{Required: true, MarkdownDescription: "The disk's file; for a snapshot chain, its newest layer."},
			"format": schema.StringAttribute{Optional: true, MarkdownDescription: "Declare the format instead of detecting it from the content.",
				Validators: []validator.String{stringvalidator.OneOf(engine.InputFormats()...)}},
			"allow_parent_cid_mismatch": schema.BoolAttribute{Optional: true, MarkdownDescription: "Accept snapshots whose parentCID does not match the parent's CID."},
			"inspect":                   schema.BoolAttribute{Optional: true, MarkdownDescription: "Inspect the guest (a libguestfs appliance launch the first time). Default `true`."},
			"id":                        schema.StringAttribute{Computed: true, MarkdownDescription: "The disk's absolute path."},
			"source_format":             schema.StringAttribute{Computed: true, MarkdownDescription: "The format found in the content."},
			"subformat":                 schema.StringAttribute{Computed: true, MarkdownDescription: "The format's variant, such as a VMDK's `createType`."},
			"chain":                     schema.ListAttribute{Computed: true, ElementType: types.StringType, MarkdownDescription: "The chain's files, newest first."},
			"virtual_size":              schema.Int64Attribute{Computed: true, MarkdownDescription: "The disk's size as the guest sees it, in bytes."},
			"file_size":                 schema.Int64Attribute{Computed: true, MarkdownDescription: "The bytes the chain's files take, together."},
			"fingerprint":               schema.StringAttribute{Computed: true, MarkdownDescription: "The content fingerprint `vmconv_disk_conversion` uses to detect a changed source."},
			"inspection":                schema.StringAttribute{Computed: true, MarkdownDescription: "`inspected`, `cached` or `skipped`."},
			"guest": schema.ObjectAttribute{Computed: true, AttributeTypes: guestAttrTypes,
				MarkdownDescription: "What inspection found: " + fieldNames(guestFields) + ". Null without inspection."},
			"warnings": schema.ListAttribute{Computed: true, ElementType: types.StringType, MarkdownDescription: "What the chain and inspection warn about."},
		},
	}
}

func (d *diskInfoDataSource) Configure(_ context.Context, req datasource.ConfigureRequest, resp *datasource.ConfigureResponse) {
	d.data = configured(req.ProviderData, &resp.Diagnostics)
}

func (d *diskInfoDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	if d.data == nil {
		resp.Diagnostics.AddError(summaryUnconfigured, unconfiguredDetail("reading a disk"))
		return
	}
	var m diskInfoModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	inspect := m.Inspect.IsNull() || m.Inspect.ValueBool()
	info, err := d.data.engine.DescribeDisk(ctx, engine.SourceSpec{
		Path: m.Path.ValueString(), Format: m.Format.ValueString(), AllowParentCIDMismatch: m.AllowParentCIDMismatch.ValueBool(),
	}, inspect)
	if err != nil {
		addFaultAt(&resp.Diagnostics, path.Root("path"), "Describing the disk", err)
		return
	}
	var size int64
	for _, l := range info.Source.Chain {
		for _, f := range l.Files {
			size += f.Size
		}
	}
	m.ID = types.StringValue(info.Source.Path)
	m.SourceFormat, m.Subformat = types.StringValue(info.Source.Format), types.StringValue(info.Source.Subformat)
	m.Chain = strList(info.Source.ChainPaths())
	m.VirtualSize, m.FileSize = types.Int64Value(info.Source.VirtualSize), types.Int64Value(size)
	m.Fingerprint, m.Inspection = types.StringValue(info.Source.Fingerprint), types.StringValue(info.Inspection)
	m.Guest = guestValue(info.Guest)
	m.Warnings = strList(info.Warnings)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}
