//go:build !vaultpam_fault_neveronline

package main

import (
	"log/slog"

	"github.com/vaultpam/appliance/connector/agent"
)

// faultLink is the identity in release builds. The test build's fault
// (fault_neveronline.go, tag vaultpam_fault_neveronline) is not compiled in.
func faultLink(f agent.LinkFactory, _ *slog.Logger) agent.LinkFactory { return f }
