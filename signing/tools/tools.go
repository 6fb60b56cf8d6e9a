//go:build tools

// Package tools pins the cosign CLI (github.com/sigstore/cosign/v2/cmd/cosign)
// so that `go build` in this module builds exactly the pinned version.
package tools

import _ "github.com/sigstore/cosign/v2/cmd/cosign"
