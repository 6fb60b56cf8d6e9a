// Package signing signs and verifies VaultPAM release artifacts (the OVA,
// SHA256SUMS, the SBOM) so that users can check them with the standard
// cosign CLI before importing the appliance:
//
//	cosign verify-blob --key cosign.pub --signature X.sig --insecure-ignore-tlog X
//
// Keys are ECDSA P-256 in cosign's encrypted key format (the password comes
// from COSIGN_PASSWORD, never from argv), or KMS references that cosign
// understands (awskms://, gcpkms://, azurekms://, hashivault://). Files are
// hashed as a stream (SHA-256 through io.Copy) and the digest is signed, so
// a multi-GiB OVA is never held in memory.
//
// Outputs per signed file: X.sig, the base64 ASN.1 ECDSA signature that
// `cosign verify-blob --signature` reads, and X.sigstore.json, a sigstore
// bundle (media type v0.3) with the message digest, the signature and a
// public-key hint. Verify checks both without cosign and says what is wrong:
// the file changed, the signature is from another key, or the signature is
// truncated or garbled.
package signing
