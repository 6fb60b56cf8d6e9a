package signing

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/sigstore/sigstore/pkg/signature"
	sigkms "github.com/sigstore/sigstore/pkg/signature/kms"
	"github.com/sigstore/sigstore/pkg/signature/kms/aws"
	"github.com/sigstore/sigstore/pkg/signature/kms/azure"
	"github.com/sigstore/sigstore/pkg/signature/kms/gcp"
	"github.com/sigstore/sigstore/pkg/signature/kms/hashivault"
)

// ErrUnknownKeyScheme means a key reference has a scheme (x://) that is
// neither a file nor one of the KMS providers cosign supports.
var ErrUnknownKeyScheme = errors.New("unknown key reference scheme")

// ErrBadKMSReference means a KMS key reference has a known scheme but does
// not have the shape the provider expects.
var ErrBadKMSReference = errors.New("malformed KMS key reference")

// kmsProvider describes one KMS scheme that cosign accepts for --key.
type kmsProvider struct {
	scheme  string
	valid   func(string) error
	example string
	env     string // what the provider reads its credentials from
}

// kmsProviders are the providers cosign's CLI links in (cmd/cosign/main.go).
// Importing their packages registers them with sigstore's kms.Get.
var kmsProviders = []kmsProvider{
	{aws.ReferenceScheme, aws.ValidReference, "awskms:///alias/vaultpam-release or awskms://[ENDPOINT]/arn:aws:kms:REGION:ACCOUNT:key/ID",
		"the AWS SDK's default chain (AWS_REGION, AWS_PROFILE, AWS_ACCESS_KEY_ID...)"},
	{gcp.ReferenceScheme, gcp.ValidReference, "gcpkms://projects/P/locations/L/keyRings/R/cryptoKeys/K[/versions/V]",
		"Google application default credentials (GOOGLE_APPLICATION_CREDENTIALS)"},
	{azure.ReferenceScheme, azure.ValidReference, "azurekms://VAULT_NAME.vault.azure.net/KEY_NAME[/VERSION]",
		"Azure identity (AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET)"},
	{hashivault.ReferenceScheme, hashivault.ValidReference, "hashivault://KEY_NAME (transit engine)",
		"VAULT_ADDR and VAULT_TOKEN"},
}

// KMSSchemes lists the supported KMS schemes, sorted.
func KMSSchemes() []string {
	var s []string
	for _, p := range kmsProviders {
		s = append(s, p.scheme)
	}
	sort.Strings(s)
	return s
}

// IsKMSRef reports whether ref looks like a URI (scheme://…) rather than a
// key file path. It says nothing about whether the scheme is supported.
func IsKMSRef(ref string) bool {
	i := strings.Index(ref, "://")
	return i > 0 && !strings.ContainsAny(ref[:i], `/\`)
}

// CheckKMSRef checks a KMS reference offline: the scheme must be one cosign
// supports and the reference must have the provider's shape. It does not
// contact the KMS.
func CheckKMSRef(ref string) error {
	for _, p := range kmsProviders {
		if !strings.HasPrefix(ref, p.scheme) {
			continue
		}
		if err := p.valid(ref); err != nil {
			return fmt.Errorf("%w %q: %v (want %s)", ErrBadKMSReference, ref, err, p.example)
		}
		return nil
	}
	scheme := ref
	if i := strings.Index(ref, "://"); i >= 0 {
		scheme = ref[:i+3]
	}
	return fmt.Errorf("%w %q: use a cosign key file path or one of %s", ErrUnknownKeyScheme, scheme, strings.Join(KMSSchemes(), ", "))
}

// loadKMSSigner resolves a KMS reference through sigstore's providers. The
// provider contacts its service (lazily or at once, depending on the
// provider) with credentials from its usual environment.
func loadKMSSigner(ctx context.Context, ref string) (signature.SignerVerifier, error) {
	if err := CheckKMSRef(ref); err != nil {
		return nil, err
	}
	sv, err := sigkms.Get(ctx, ref, crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("opening KMS key %s: %w (credentials come from %s)", ref, err, kmsEnvHint(ref))
	}
	return sv, nil
}

func kmsEnvHint(ref string) string {
	for _, p := range kmsProviders {
		if strings.HasPrefix(ref, p.scheme) {
			return p.env
		}
	}
	return "the provider's environment"
}

// LoadSigner resolves a key reference the way `cosign sign-blob --key` does:
// a KMS URI (see KMSSchemes) or a path to an encrypted cosign private key,
// decrypted with the password from pw (nil means COSIGN_PASSWORD).
func LoadSigner(ctx context.Context, ref string, pw PasswordFunc) (signature.SignerVerifier, error) {
	if ref == "" {
		return nil, errors.New("no signing key given")
	}
	if IsKMSRef(ref) {
		return loadKMSSigner(ctx, ref)
	}
	return loadPrivateKeyFile(ref, pw)
}
