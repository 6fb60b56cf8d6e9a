# The VaultPAM Connector appliance: raw disk → update bundle and ISO → OVA
# → signatures. Run by `make ova` (`make bundle` leaves out the OVA with
# -except=ova); see packer/README.md.

packer {
  required_version = ">= 1.15.0"
  required_plugins {
    vaultpam = {
      version = ">= 0.1.0"
      source  = "github.com/vaultpam/vaultpam"
    }
  }
}

source "vaultpam-appliance" "connector" {
  version       = var.version
  bin_dir       = var.bin_dir
  output_dir    = var.build_dir
  debian_suite  = var.debian_suite
  debian_mirror = var.debian_mirror
  # The update repository's root, the updater's trust anchor. `make ova`
  # creates the repository (vaultpam-sign update-init) before Packer runs.
  update_root = "${var.dist_dir}/update-repo/root.json"
  # Empty for releases; test bundles only (make test-bundles).
  extra_cmdline = var.extra_cmdline
}

build {
  sources = ["source.vaultpam-appliance.connector"]

  # The update: bundle (+ .sig), its entry in dist/update-repo, the update
  # ISO; then the ISO's signature, the SBOM and SHA256SUMS.
  post-processors {
    post-processor "vaultpam-update" {
      key      = var.signing_key
      dist_dir = var.dist_dir
      version  = var.version
    }
    post-processor "vaultpam-cosign" {
      key         = var.signing_key
      dist_dir    = var.dist_dir
      sbom_source = "${var.build_dir}/dpkg-status"
      version     = var.version
    }
  }

  # The OVA and its signature; SHA256SUMS then lists every signed file in
  # dist_dir. `packer build -except=ova` (make bundle) skips this chain.
  post-processors {
    post-processor "vaultpam-ova" {
      name          = "ova"
      output_dir    = var.dist_dir
      vm_name       = "vaultpam-connector"
      version       = var.version
      cpus          = var.cpus
      memory_mib    = var.memory_mib
      disk_size_mib = var.disk_size_mib
      # Both empty (the default): no VMware .cert in the OVA.
      publisher_key_file  = var.publisher_key_file
      publisher_cert_file = var.publisher_cert_file
    }
    post-processor "vaultpam-cosign" {
      key         = var.signing_key
      dist_dir    = var.dist_dir
      sbom_source = "${var.build_dir}/dpkg-status"
      version     = var.version
    }
  }
}
