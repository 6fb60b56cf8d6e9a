// Package version holds the version of packer-plugin-vaultpam that Packer
// reports and checks against required_plugins.
package version

import "github.com/hashicorp/packer-plugin-sdk/version"

// Version and VersionPrerelease make up the plugin version, 0.1.0-dev.
// A release build sets VersionPrerelease to "" with
// -ldflags "-X github.com/vaultpam/appliance/packer/version.VersionPrerelease=".
var (
	Version           = "0.1.0"
	VersionPrerelease = "dev"
	VersionMetadata   = ""
)

// PluginVersion is what the plugin's describe command reports.
var PluginVersion = version.NewPluginVersion(Version, VersionPrerelease, VersionMetadata)
