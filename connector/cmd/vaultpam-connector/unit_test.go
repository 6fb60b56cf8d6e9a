package main

import (
	"os"
	"strings"
	"testing"
)

// TestUnitContract checks vaultpam-connector.service (installed into the
// image from here) keeps what the appliance relies on: notify and watchdog,
// its own user, a read-only system with only /data writable, and the paths
// of the config, the data dir and the local API socket.
func TestUnitContract(t *testing.T) {
	b, err := os.ReadFile("vaultpam-connector.service")
	if err != nil {
		t.Fatal(err)
	}
	unit := string(b)
	for _, want := range []string{"Type=notify", "WatchdogSec=", "Restart=always", "User=vaultpam", "ProtectSystem=strict",
		"NoNewPrivileges=yes", "ReadWritePaths=/data", "RuntimeDirectory=vaultpam", "ConditionPathExists=/config/connector.yaml",
		"PAM_AGENT_CONFIG=/config/connector.yaml", "PAM_AGENT_DATA_DIR=/data", "PAM_AGENT_SOCKET=/run/vaultpam/connector.sock",
		"ExecStart=/usr/bin/vaultpam-connector run"} {
		if !strings.Contains(unit, want) {
			t.Errorf("vaultpam-connector.service lacks %q", want)
		}
	}
}
