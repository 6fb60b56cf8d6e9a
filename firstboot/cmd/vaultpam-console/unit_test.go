package main

import (
	"os"
	"strings"
	"testing"

	"github.com/vaultpam/appliance/firstboot/internal/privileged"
)

// TestUnitContract checks the console's units (installed into the image
// from here): each console owns its terminal with the right TERM, comes
// back when the program exits, and runs unprivileged with its helper
// socket; the helper is root on a socket only the console's group
// reaches. (How exposed each unit is: rootfs's TestUnitSecurity.)
func TestUnitContract(t *testing.T) {
	unprivileged := []string{"User=vaultpam-console\n", "CapabilityBoundingSet=\n", "NoNewPrivileges=yes\n",
		"RuntimeDirectory=vaultpam-console\n", "RuntimeDirectoryPreserve=yes\n", "Wants=vaultpam-console-helper.socket\n",
		"SupplementaryGroups=vaultpam systemd-journal cdrom\n"}
	for unit, want := range map[string][]string{
		"vaultpam-console-tty1.service":   append([]string{"TTYPath=/dev/tty1", "TERM=linux", "StandardInput=tty", "Restart=always", "ExecStart=/usr/bin/vaultpam-console\n"}, unprivileged...),
		"vaultpam-console-serial.service": append([]string{"TTYPath=/dev/ttyS0", "TERM=vt220", "StandardInput=tty", "Restart=always", "ExecStart=/usr/bin/vaultpam-console\n"}, unprivileged...),
		"vaultpam-console-helper.socket": {"ListenStream=" + privileged.DefaultSocket + "\n", "SocketUser=root\n", "SocketGroup=vaultpam-console\n",
			"SocketMode=0660\n", "WantedBy=sockets.target"},
		"vaultpam-console-helper.service": {"ExecStart=/usr/bin/vaultpam-console helper\n", "Requires=vaultpam-console-helper.socket",
			"ReadWritePaths=/config\n", "ProtectHostname=no\n", "CapabilityBoundingSet=CAP_SYS_ADMIN\n", "NoNewPrivileges=yes\n"},
	} {
		b, err := os.ReadFile(unit)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range want {
			if !strings.Contains(string(b), w) {
				t.Errorf("%s lacks %q", unit, w)
			}
		}
	}
}
