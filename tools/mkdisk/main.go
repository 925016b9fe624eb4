// Command mkdisk writes a small VMware-style disk for the demo: a
// monolithicSparse base with an MBR partition table, and two snapshot
// layers (web-000001.vmdk, web-000002.vmdk) chained by parentFileNameHint.
// Each layer writes its own recognisable text, so the converted image shows
// that every layer made it through.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/vmconv/terraform-provider-vmconv/internal/testimg"
)

func main() {
	dir := flag.String("dir", ".build/demo/source", "folder to write the disk into")
	force := flag.Bool("force", false, "rewrite the disk even if it exists")
	flag.Parse()
	head := filepath.Join(*dir, "web-000002.vmdk")
	if _, err := os.Stat(head); err == nil && !*force {
		fmt.Println(head)
		return
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		log.Fatal(err)
	}
	for _, n := range []string{"web.vmdk", "web-000001.vmdk", "web-000002.vmdk"} {
		os.Remove(filepath.Join(*dir, n))
	}
	const mib = 1 << 20
	base := testimg.Layer{
		{Offset: 510, Length: 1, Byte: 0x55}, {Offset: 511, Length: 1, Byte: 0xaa}, // MBR signature
		{Offset: 1 * mib, Length: 4 * mib, Byte: 'B'},
		{Offset: 16 * mib, Length: 2 * mib, Byte: 'b'},
	}
	snap1 := testimg.Layer{{Offset: 2 * mib, Length: mib, Byte: '1'}, {Offset: 20 * mib, Length: mib, Byte: '1'}}
	snap2 := testimg.Layer{{Offset: 3 * mib, Length: 64 << 10, Byte: '2'}, {Offset: 40 * mib, Length: mib, Byte: '2'}}
	paths, err := testimg.VMDKChain(*dir, "web", "monolithicSparse", 64*mib, base, snap1, snap2)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(paths[0])
}
