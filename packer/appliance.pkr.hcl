# The VaultPAM Connector appliance: raw disk → OVA → signatures.
# Run by `make ova`; see packer/README.md.

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
}

build {
  sources = ["source.vaultpam-appliance.connector"]

  post-processors {
    post-processor "vaultpam-ova" {
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
