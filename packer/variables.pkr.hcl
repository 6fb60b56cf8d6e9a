# Inputs of packer/appliance.pkr.hcl. `make ova` sets version, bin_dir,
# build_dir and dist_dir; override the rest with -var NAME=VALUE or a
# *.pkrvars.hcl file.

variable "version" {
  type        = string
  description = "Appliance version, MAJOR.MINOR.PATCH: os-release, the file names, the OVA's ProductSection, the update bundle."
  default     = "0.1.0"
  validation {
    # Plain x.y.z: systemd-boot and the updater order versions this way
    # (a suffix like -rc1 would rank above the release).
    condition     = can(regex("^(0|[1-9][0-9]{0,8})\\.(0|[1-9][0-9]{0,8})\\.(0|[1-9][0-9]{0,8})$", var.version))
    error_message = "The version variable must be MAJOR.MINOR.PATCH, three decimal numbers without leading zeros, such as 0.2.0 (no -rc suffix: the boot loader would rank it above the release)."
  }
}

variable "bin_dir" {
  type        = string
  description = "Directory with vaultpam-connector and vaultpam-console (make build)."
  default     = "bin"
}

variable "build_dir" {
  type        = string
  description = "Build directory: disk.raw, image.json, dpkg-status, the package cache."
  default     = "build"
}

variable "dist_dir" {
  type        = string
  description = "Where the OVA, update bundle and ISO, signatures, SHA256SUMS, cosign.pub and SBOM go; the update repository is DIST_DIR/update-repo."
  default     = "dist"
}

variable "debian_suite" {
  type        = string
  description = "Debian release of the root file system."
  default     = "bookworm"
}

variable "debian_mirror" {
  type        = string
  description = "Debian archive, or a snapshot.debian.org URL to pin package versions."
  default     = "http://deb.debian.org/debian"
  validation {
    condition     = can(regex("^https?://", var.debian_mirror))
    error_message = "The debian_mirror variable must be an http:// or https:// URL."
  }
}

variable "disk_size_mib" {
  type        = number
  description = "Virtual disk size in MiB. The image itself is about 0.8 GiB; the DATA partition grows into the rest on first boot."
  default     = 4096
  validation {
    condition     = var.disk_size_mib >= 1024 && var.disk_size_mib <= 2097152 && floor(var.disk_size_mib) == var.disk_size_mib
    error_message = "The disk_size_mib variable must be a whole number from 1024 to 2097152: the disk cannot be smaller than the appliance image (about 800 MiB, checked exactly at build time)."
  }
}

variable "cpus" {
  type        = number
  description = "Virtual CPUs of the VM (the operator can change this at import)."
  default     = 2
  validation {
    condition     = var.cpus >= 1 && var.cpus <= 128 && floor(var.cpus) == var.cpus
    error_message = "The cpus variable must be a whole number from 1 to 128."
  }
}

variable "memory_mib" {
  type        = number
  description = "Memory of the VM in MiB."
  default     = 2048
  validation {
    condition     = var.memory_mib >= 512 && var.memory_mib % 4 == 0
    error_message = "The memory_mib variable must be at least 512 and a multiple of 4."
  }
}

variable "signing_key" {
  type        = string
  description = "Release key: cosign private key file (password in COSIGN_PASSWORD) or KMS reference (awskms://, gcpkms://, azurekms://, hashivault://). It signs the cosign signatures and the update repository. Empty: the development key pair in dist_dir."
  default     = ""
}

variable "publisher_key_file" {
  type        = string
  description = "Optional: unencrypted PEM RSA private key (at least 2048 bits) that signs the OVF manifest as VMware's .cert, so vSphere shows the publisher. Set together with publisher_cert_file. Default: $VAULTPAM_PUBLISHER_KEY; empty = no .cert."
  default     = env("VAULTPAM_PUBLISHER_KEY")
}

variable "publisher_cert_file" {
  type        = string
  description = "Optional: PEM code-signing certificate for publisher_key_file, leaf first, then intermediates. Default: $VAULTPAM_PUBLISHER_CERT; empty = no .cert."
  default     = env("VAULTPAM_PUBLISHER_CERT")
}

variable "extra_cmdline" {
  type        = string
  description = "For test builds only: arguments appended to the UKI's kernel command line (make test sets vaultpam.update_gate=… on the never-Online bundle so its trial boots fail fast). Release builds leave it empty."
  default     = ""
}
