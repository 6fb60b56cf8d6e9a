# Test template: the bundled file builder stands in for vaultpam-appliance
# (which needs root and minutes), so the real Packer drives the real plugin's
# vaultpam-ova post-processor over RPC on a small raw disk.
packer {
  required_plugins {
    vaultpam = {
      version = ">= 0.1.0"
      source  = "github.com/vaultpam/vaultpam"
    }
  }
}

variable "disk" { type = string }
variable "out" { type = string }

source "file" "disk" {
  source = var.disk
  target = "${var.out}/disk.raw"
}

build {
  sources = ["source.file.disk"]
  post-processor "vaultpam-ova" {
    output_dir    = var.out
    version       = "0.0.1-test"
    disk_size_mib = 16
    cpus          = 3
  }
}
