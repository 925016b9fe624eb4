package boottest_test

import (
	"strings"
	"testing"

	"github.com/vmconv/terraform-provider-vmconv/engine/boottest"
	"github.com/vmconv/terraform-provider-vmconv/engine/guest/guesttest"
	"github.com/vmconv/terraform-provider-vmconv/internal/acctest"
)

// TestInstrumentSerialFixture runs the instrument step on the grub.cfg
// grub-mkconfig wrote in the serial fixture guest (read with guestfish, not
// vmconv's code): a guest whose serial console is already configured. Its
// boot configuration is left as it is and the marker is planted. Booting it
// is TestAccKVMDomain_remote's job.
func TestInstrumentSerialFixture(t *testing.T) {
	fx := acctest.GuestFixtures(t)
	v, ok := fx.Variants["serial"]
	if !ok {
		t.Fatal("the fixtures have no serial variant")
	}
	cfg, err := acctest.GuestFile(fx.Path(v.Disk), "/boot/grub/grub.cfg")
	if err != nil {
		t.Fatal(err)
	}
	// The fixture is what it claims to be.
	if !strings.Contains(cfg, "terminal_output serial") || !strings.Contains(cfg, "console=ttyS0,115200") || strings.Contains(cfg, "root=UUID=") {
		t.Fatalf("the serial fixture's grub.cfg lacks its serial console:\n%s", cfg)
	}
	m := guesttest.New(map[string]string{"/boot/grub/grub.cfg": cfg})
	if err := boottest.Instrument(m, "n0nce"); err != nil {
		t.Fatal(err)
	}
	if got := string(m.Files["/boot/grub/grub.cfg"]); got != cfg {
		t.Errorf("grub.cfg changed although every kernel line has the serial console:\n%s", got)
	}
	if !strings.Contains(string(m.Files["/usr/local/sbin/vmconv-boot-marker"]), boottest.Marker+" n0nce") ||
		m.Links["/etc/systemd/system/multi-user.target.wants/vmconv-boot-marker.service"] == "" {
		t.Error("the marker unit was not planted")
	}
}
