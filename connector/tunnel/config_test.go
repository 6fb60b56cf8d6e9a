package tunnel

import (
	"net/url"
	"strings"
	"testing"
)

func splitLines(s string) []string { return strings.Split(strings.TrimSpace(s), "\n") }

func TestConfigValidateListsEveryProblem(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Address = "no-port"
	cfg.Proxy = &url.URL{Scheme: "socks5", Host: "p:1080"}
	cfg.AllowedTargets = []string{"nonsense entry"}
	cfg.DialTimeout = 0
	err := cfg.Validate()
	if err == nil {
		t.Fatal("Validate = nil, want errors")
	}
	if got := len(splitLines(err.Error())); got != 5 { // address, certificate, proxy, allow-list, timeout
		t.Errorf("Validate reported %d problems, want 5:\n%v", got, err)
	}
	good := DefaultConfig()
	good.Address = "cp.example.com:443"
	good.Certificate = nil
	if err := good.Validate(); err == nil {
		t.Error("Validate without a certificate source = nil")
	}
}
