// Command vaultpam-sign signs and verifies VaultPAM release artifacts with
// cosign-compatible keys, for release engineers and for users who do not
// have the cosign CLI. The password of an encrypted key is read from
// COSIGN_PASSWORD, never from the command line.
//
//	vaultpam-sign verify [--key cosign.pub] [DIR]       check a downloaded release
//	vaultpam-sign verify-blob --key K --signature S F   check one file's .sig (or --bundle)
//	vaultpam-sign generate-key-pair [--output-dir D]    make cosign.key / cosign.pub
//	vaultpam-sign sign --dist D [--key REF] [--sbom-source F --version V] FILE...
//	vaultpam-sign sbom --dpkg-status F --version V      print the SPDX SBOM
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := (&app{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Args: os.Args[1:], LookupEnv: os.LookupEnv}).run(ctx)
	stop()
	os.Exit(code)
}
