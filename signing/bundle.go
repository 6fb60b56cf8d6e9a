package signing

import (
	"fmt"

	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	"google.golang.org/protobuf/encoding/protojson"
)

// BundleMediaType is the sigstore bundle format we write (new format; what
// `cosign sign-blob --new-bundle-format` writes for a key).
const BundleMediaType = "application/vnd.dev.sigstore.bundle.v0.3+json"

// Bundle returns the signature as a sigstore bundle: the message digest,
// the signature and the public-key hint. It has no transparency-log entry,
// so cosign verifies it with --key, --trusted-root and --insecure-ignore-tlog.
func (s *Signature) Bundle() ([]byte, error) {
	b := &protobundle.Bundle{
		MediaType: BundleMediaType,
		VerificationMaterial: &protobundle.VerificationMaterial{
			Content: &protobundle.VerificationMaterial_PublicKey{
				PublicKey: &protocommon.PublicKeyIdentifier{Hint: s.KeyHint},
			},
		},
		Content: &protobundle.Bundle_MessageSignature{
			MessageSignature: &protocommon.MessageSignature{
				MessageDigest: &protocommon.HashOutput{
					Algorithm: protocommon.HashAlgorithm_SHA2_256,
					Digest:    s.Digest.Sum,
				},
				Signature: s.Sig,
			},
		},
	}
	out, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("encoding bundle: %w", err)
	}
	return append(out, '\n'), nil
}

// ParseBundle reads a bundle written by Bundle (or by cosign for a key):
// the signed digest, the signature and the key hint. Size is left zero.
func ParseBundle(data []byte) (*Signature, error) {
	var b protobundle.Bundle
	if err := protojson.Unmarshal(data, &b); err != nil {
		return nil, fmt.Errorf("%w: not a sigstore bundle: %v", ErrBadSignature, err)
	}
	ms := b.GetMessageSignature()
	if ms == nil {
		return nil, fmt.Errorf("%w: bundle has no message signature (a DSSE attestation bundle is not a blob signature)", ErrBadSignature)
	}
	md := ms.GetMessageDigest()
	if md == nil || md.GetAlgorithm() != protocommon.HashAlgorithm_SHA2_256 || len(md.GetDigest()) != 32 {
		return nil, fmt.Errorf("%w: bundle has no SHA-256 message digest", ErrBadSignature)
	}
	if len(ms.GetSignature()) == 0 {
		return nil, fmt.Errorf("%w: bundle has an empty signature", ErrBadSignature)
	}
	sig := &Signature{Digest: Digest{Sum: md.GetDigest()}, Sig: ms.GetSignature()}
	if pk := b.GetVerificationMaterial().GetPublicKey(); pk != nil {
		sig.KeyHint = pk.GetHint()
	}
	return sig, nil
}
