package vmdk

import (
	"compress/flate"
	"errors"
	"fmt"
	"runtime"
)

// Config controls how a disk is written. A nil *Config means DefaultConfig().
type Config struct {
	// ExtentName is the file name written into the descriptor's extent
	// line; vSphere ignores it for a stream, qemu-img shows it.
	ExtentName string
	// AdapterType is ddb.adapterType. The VMDK format only knows ide,
	// buslogic, lsilogic and legacyESX; the controller the VM really gets
	// (pvscsi) comes from the OVF, so "lsilogic" is the right value for a
	// SCSI disk.
	AdapterType string
	// VirtualHWVersion is ddb.virtualHWVersion: the oldest hardware
	// version that can use the disk (4 for every sparse disk).
	VirtualHWVersion int
	// ToolsInstallType is ddb.toolsInstallType; 4 means open-vm-tools.
	ToolsInstallType int
	// ToolsVersion is ddb.toolsVersion; 2147483647 means "guest managed"
	// (open-vm-tools from the distribution), so vSphere offers no upgrade.
	ToolsVersion int64
	// CID is the content ID in the descriptor. Keep it fixed (or derived
	// from the content) for reproducible output.
	CID uint32
	// Level is the zlib compression level, 1 (fastest) to 9 (smallest).
	Level int
	// Workers is the number of goroutines compressing grains; 0 means
	// runtime.GOMAXPROCS(0).
	Workers int
}

// DefaultConfig returns the settings used for the appliance disk.
func DefaultConfig() *Config {
	return &Config{
		ExtentName:       "disk.vmdk",
		AdapterType:      "lsilogic",
		VirtualHWVersion: 4,
		ToolsInstallType: 4,
		ToolsVersion:     2147483647,
		CID:              0xfffffffe,
		Level:            flate.DefaultCompression,
	}
}

// Validate reports every problem with c.
func (c *Config) Validate() error {
	var errs []error
	if c.ExtentName == "" || len(c.ExtentName) > 255 {
		errs = append(errs, fmt.Errorf("extent name %q: want 1 to 255 characters", c.ExtentName))
	}
	switch c.AdapterType {
	case "ide", "buslogic", "lsilogic", "legacyESX":
	default:
		errs = append(errs, fmt.Errorf("adapter type %q: want ide, buslogic, lsilogic or legacyESX", c.AdapterType))
	}
	if c.VirtualHWVersion < 4 {
		errs = append(errs, fmt.Errorf("virtual hardware version %d: want 4 or more", c.VirtualHWVersion))
	}
	if c.Level != flate.DefaultCompression && (c.Level < flate.BestSpeed || c.Level > flate.BestCompression) {
		errs = append(errs, fmt.Errorf("compression level %d: want 1 to 9 or -1 for the default", c.Level))
	}
	if c.Workers < 0 {
		errs = append(errs, fmt.Errorf("workers %d: want 0 (all cores) or more", c.Workers))
	}
	return errors.Join(errs...)
}

func (c *Config) workers() int {
	if c.Workers > 0 {
		return c.Workers
	}
	return runtime.GOMAXPROCS(0)
}
