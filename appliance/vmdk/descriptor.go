package vmdk

import (
	"fmt"
	"strings"
)

// descriptor renders the embedded text descriptor for a disk of capacity
// sectors. It is written in sector 1 and padded to whole sectors.
func descriptor(cfg *Config, capacity uint64) string {
	// SCSI geometry as VMware reports it: 255 heads, 63 sectors per track,
	// cylinders capped at 65535.
	cyl := capacity / (255 * 63)
	if cyl > 65535 {
		cyl = 65535
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Disk DescriptorFile\n")
	fmt.Fprintf(&b, "version=1\n")
	fmt.Fprintf(&b, "CID=%08x\n", cfg.CID)
	fmt.Fprintf(&b, "parentCID=ffffffff\n")
	fmt.Fprintf(&b, "createType=\"streamOptimized\"\n\n")
	fmt.Fprintf(&b, "# Extent description\n")
	fmt.Fprintf(&b, "RW %d SPARSE %q\n\n", capacity, cfg.ExtentName)
	fmt.Fprintf(&b, "# The Disk Data Base\n#DDB\n\n")
	fmt.Fprintf(&b, "ddb.adapterType = %q\n", cfg.AdapterType)
	fmt.Fprintf(&b, "ddb.geometry.cylinders = \"%d\"\n", cyl)
	fmt.Fprintf(&b, "ddb.geometry.heads = \"255\"\n")
	fmt.Fprintf(&b, "ddb.geometry.sectors = \"63\"\n")
	fmt.Fprintf(&b, "ddb.toolsInstallType = \"%d\"\n", cfg.ToolsInstallType)
	fmt.Fprintf(&b, "ddb.toolsVersion = \"%d\"\n", cfg.ToolsVersion)
	fmt.Fprintf(&b, "ddb.virtualHWVersion = \"%d\"\n", cfg.VirtualHWVersion)
	return b.String()
}
