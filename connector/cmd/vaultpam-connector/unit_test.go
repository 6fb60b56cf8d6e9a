package main

import (
	"os"
	"regexp"
	"strconv"
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
		"ExecStart=/usr/bin/vaultpam-connector run", "Environment=GOMEMLIMIT=", "MemoryHigh=", "MemoryMax="} {
		if !strings.Contains(unit, want) {
			t.Errorf("vaultpam-connector.service lacks %q", want)
		}
	}
}

// TestUnitMemoryFitsTheAppliance: the Go runtime's soft limit is below
// the kernel's throttling point, which is below the hard cap, which leaves
// the OS and the console their share of a 2 GiB appliance.
func TestUnitMemoryFitsTheAppliance(t *testing.T) {
	b, err := os.ReadFile("vaultpam-connector.service")
	if err != nil {
		t.Fatal(err)
	}
	val := func(key, unitSuffix string) int64 {
		m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(key) + `(\d+)` + unitSuffix + `$`).FindStringSubmatch(string(b))
		if m == nil {
			t.Fatalf("no %s<n>%s line", key, unitSuffix)
		}
		n, _ := strconv.ParseInt(m[1], 10, 64)
		return n << 20
	}
	const appliance, osReserve = 2 << 30, 640 << 20 // kernel, systemd, journald, networkd, open-vm-tools, two consoles, page cache
	goLimit, high, max := val("Environment=GOMEMLIMIT=", "MiB"), val("MemoryHigh=", "M"), val("MemoryMax=", "M")
	if !(goLimit < high && high < max && max <= appliance-osReserve) {
		t.Errorf("GOMEMLIMIT %d MiB < MemoryHigh %d MiB < MemoryMax %d MiB ≤ %d MiB does not hold", goLimit>>20, high>>20, max>>20, (appliance-osReserve)>>20)
	}
}

func TestMemoryLimit(t *testing.T) {
	files := func(m map[string]string) func(string) ([]byte, error) {
		return func(p string) ([]byte, error) {
			if v, ok := m[p]; ok {
				return []byte(v), nil
			}
			return nil, os.ErrNotExist
		}
	}
	const none = int64(1<<63 - 1)
	for _, tc := range []struct {
		name    string
		env     string
		files   map[string]string
		want    int64
		wantSet bool
	}{
		{"from the unit", "1000MiB", nil, none, false}, // the runtime applied it; reported as it is
		{"container limit", "", map[string]string{"/proc/self/cgroup": "0::/docker/abc\n", "/sys/fs/cgroup/docker/abc/memory.max": "1073741824\n"}, 1073741824 / 100 * 85, true},
		{"no cgroup limit", "", map[string]string{"/proc/self/cgroup": "0::/user.slice\n", "/sys/fs/cgroup/user.slice/memory.max": "max\n"}, none, false},
		{"no cgroup v2", "", nil, none, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cur, set := none, false
			setLimit := func(n int64) int64 {
				old := cur
				if n >= 0 {
					cur, set = n, true
				}
				return old
			}
			got, src := memoryLimit(func(k string) string {
				if k == "GOMEMLIMIT" {
					return tc.env
				}
				return ""
			}, files(tc.files), setLimit)
			if got != tc.want || set != tc.wantSet || src == "" {
				t.Errorf("memoryLimit = %d (%s), set %v; want %d, set %v", got, src, set, tc.want, tc.wantSet)
			}
		})
	}
}
