package boot

import (
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
)

// relayEnv makes the test binary a one-connection TCP relay (stdin/stdout
// ↔ the address in the variable), which QEMU runs per guest connection.
const relayEnv = "VAULTPAM_TEST_RELAY"

func relayMain(addr string) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "relay:", err)
		os.Exit(1)
	}
	go func() { io.Copy(c, os.Stdin); c.(*net.TCPConn).CloseWrite() }()
	io.Copy(os.Stdout, c)
	os.Exit(0)
}

var update = flag.Bool("update", false, "rewrite the documentation screenshots")

func TestMain(m *testing.M) {
	if addr := os.Getenv(relayEnv); addr != "" {
		relayMain(addr) // QEMU started this test binary as a guestfwd relay
	}
	flag.Parse()
	os.Exit(m.Run())
}

// needRoot skips unless the test runs as root with ip(8): it makes network
// namespaces.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the test makes a network namespace for the lab")
	}
	needTool(t, "ip", "iproute2")
}

// mustRun runs a command and fails the test when it fails.
func mustRun(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := run(name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}
