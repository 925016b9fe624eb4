package provider_test

import (
	"fmt"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/vmconv/terraform-provider-vmconv/internal/acctest"
)

// TestAccDiskInfo describes the fixture's snapshot chain and the guest on
// it, read-only, then the same disk without inspection.
func TestAccDiskInfo(t *testing.T) {
	t.Parallel()
	fx := acctest.GuestFixtures(t)
	head := fx.Path(fx.Chain[0])
	before, err := acctest.DirSums(fx.Path("chain"))
	if err != nil {
		t.Fatal(err)
	}
	const addr = "data.vmconv_disk_info.web"
	cfg := func(extra string) string {
		return fmt.Sprintf("data \"vmconv_disk_info\" \"web\" {\n  path = %s\n  %s\n}\n", acctest.HCLString(head), extra)
	}
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { acctest.PreCheck(t) },
		ProtoV6ProviderFactories: acctest.ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config: cfg(""),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(addr, tfjsonpath.New("source_format"), knownvalue.StringExact("vmdk")),
					statecheck.ExpectKnownValue(addr, tfjsonpath.New("chain"), knownvalue.ListSizeExact(len(fx.Chain))),
					statecheck.ExpectKnownValue(addr, tfjsonpath.New("fingerprint"), knownvalue.StringRegexp(regexpMust(`^v1:[0-9a-f]{64}$`))),
					statecheck.ExpectKnownValue(addr, tfjsonpath.New("inspection"), knownvalue.StringRegexp(regexpMust(`^(inspected|cached)$`))),
					statecheck.ExpectKnownValue(addr, tfjsonpath.New("guest").AtMapKey("os"), knownvalue.StringExact("linux")),
					statecheck.ExpectKnownValue(addr, tfjsonpath.New("guest").AtMapKey("distro"), knownvalue.StringExact("debian")),
					statecheck.ExpectKnownValue(addr, tfjsonpath.New("guest").AtMapKey("hostname"), knownvalue.StringExact("web")),
					statecheck.ExpectKnownValue(addr, tfjsonpath.New("guest").AtMapKey("firmware"), knownvalue.StringExact("bios")),
					statecheck.ExpectKnownValue(addr, tfjsonpath.New("guest").AtMapKey("network_stacks"), knownvalue.ListExact([]knownvalue.Check{knownvalue.StringExact("ifupdown")})),
					statecheck.ExpectKnownValue(addr, tfjsonpath.New("guest").AtMapKey("hypervisor_tools"), knownvalue.ListExact([]knownvalue.Check{knownvalue.StringExact("open-vm-tools")})),
				},
				Check: func(*terraform.State) error { return checkSourceUntouched(fx.Path("chain"), &before)(nil) },
			},
			{
				// Read again: from the cache, no appliance.
				Config: cfg(""),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(addr, tfjsonpath.New("inspection"), knownvalue.StringExact("cached")),
					statecheck.ExpectKnownValue(addr, tfjsonpath.New("guest").AtMapKey("hostname"), knownvalue.StringExact("web")),
				},
			},
			{
				Config: cfg("inspect = false"),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(addr, tfjsonpath.New("inspection"), knownvalue.StringExact("skipped")),
					statecheck.ExpectKnownValue(addr, tfjsonpath.New("guest"), knownvalue.Null()),
					statecheck.ExpectKnownValue(addr, tfjsonpath.New("virtual_size"), knownvalue.NotNull()),
				},
			},
		},
	})
}
