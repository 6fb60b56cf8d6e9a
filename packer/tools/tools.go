//go:build tools

// Package tools records the build-time tools this module pins.
package tools

import _ "github.com/hashicorp/packer"
