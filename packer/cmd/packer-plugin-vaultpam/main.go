// Command packer-plugin-vaultpam is the Packer plugin that builds the
// VaultPAM Connector appliance: the builder vaultpam-appliance (raw disk)
// and the post-processors vaultpam-update (update bundle, update
// repository, update ISO), vaultpam-ova (OVA) and vaultpam-cosign
// (signatures, SHA256SUMS, SBOM). Packer starts it; it is not run by hand.
package main

import (
	"fmt"
	"os"

	"github.com/hashicorp/packer-plugin-sdk/plugin"

	"github.com/vaultpam/appliance/packer/builder/appliance"
	"github.com/vaultpam/appliance/packer/postprocessor/cosign"
	"github.com/vaultpam/appliance/packer/postprocessor/ova"
	"github.com/vaultpam/appliance/packer/postprocessor/update"
	pluginversion "github.com/vaultpam/appliance/packer/version"
)

func main() {
	pps := plugin.NewSet()
	pps.RegisterBuilder("appliance", appliance.New())
	pps.RegisterPostProcessor("ova", ova.New())
	pps.RegisterPostProcessor("cosign", cosign.New())
	pps.RegisterPostProcessor("update", update.New())
	pps.SetVersion(pluginversion.PluginVersion)
	if err := pps.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "packer-plugin-vaultpam: error: %v\n", err)
		os.Exit(1)
	}
}
