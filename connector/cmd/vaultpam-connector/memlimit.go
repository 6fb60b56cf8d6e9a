package main

import (
	"fmt"
	"strconv"
	"strings"
)

// memoryLimit makes sure the Go runtime has a soft memory limit, and says
// which: GOMEMLIMIT from the environment (the appliance's unit sets it;
// the runtime applied it at start), else 85% of the cgroup v2 memory.max
// the connector runs under (a container with a memory limit), else none.
// readFile reads /proc and /sys; setLimit is debug.SetMemoryLimit. It
// returns the limit in bytes (math.MaxInt64: none) and its source.
// A limit set any other way (debug.SetMemoryLimit) is reported as it is.
func memoryLimit(getenv func(string) string, readFile func(string) ([]byte, error), setLimit func(int64) int64) (int64, string) {
	if v := getenv("GOMEMLIMIT"); v != "" && v != "off" {
		return setLimit(-1), "GOMEMLIMIT=" + v
	}
	cg, err := readFile("/proc/self/cgroup")
	if err != nil {
		return setLimit(-1), "none"
	}
	for _, line := range strings.Split(string(cg), "\n") {
		path, ok := strings.CutPrefix(line, "0::")
		if !ok {
			continue
		}
		b, err := readFile("/sys/fs/cgroup" + strings.TrimSpace(path) + "/memory.max")
		if err != nil {
			break
		}
		max, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil { // "max": no limit
			break
		}
		limit := max / 100 * 85
		setLimit(limit)
		return limit, fmt.Sprintf("85%% of the cgroup's memory.max (%d MiB)", max>>20)
	}
	return setLimit(-1), "none"
}
