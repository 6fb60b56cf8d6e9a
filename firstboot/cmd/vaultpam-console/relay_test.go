package main

import (
	"fmt"
	"io"
	"net"
	"os"
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
