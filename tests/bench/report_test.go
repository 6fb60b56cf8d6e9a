package bench

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"text/tabwriter"
	"time"
)

var (
	resultsMu sync.Mutex
	results   = map[string]map[string]float64{} // metric → path → value
)

// record keeps the last value of a metric for a path (the benchmark
// framework's final, largest run).
func record(metric, path string, v float64) {
	resultsMu.Lock()
	defer resultsMu.Unlock()
	if results[metric] == nil {
		results[metric] = map[string]float64{}
	}
	results[metric][path] = v
}

func value(metric, path string) (float64, bool) {
	v, ok := results[metric][path]
	return v, ok
}

var metricOrder = []string{
	"throughput_1_stream_gbit_s", "throughput_8_stream_gbit_s",
	"open_p50_ms", "open_p99_ms",
	"interactive_under_bulk_p50_ms", "interactive_under_bulk_p99_ms",
	"rss_idle_mib", "rss_1000_sessions_mib", "rss_per_session_kib",
}

// goal is one target from the issue.
type goal struct {
	Name   string  `json:"name"`
	Value  float64 `json:"value"`
	Target string  `json:"target"`
	Met    bool    `json:"met"`
}

func goals() []goal {
	var out []goal
	add := func(name, target string, v float64, ok, met bool) {
		if ok {
			out = append(out, goal{Name: name, Value: round(v), Target: target, Met: met})
		}
	}
	t1, ok1 := value("throughput_1_stream_gbit_s", "tunnel")
	d1, okd := value("throughput_1_stream_gbit_s", "direct")
	s1, oks := value("throughput_1_stream_gbit_s", "ssh -R")
	add("single stream vs direct TCP", ">= 0.5", t1/d1, ok1 && okd, t1 >= 0.5*d1)
	add("single stream vs ssh -R", ">= 1.5", t1/s1, ok1 && oks, t1 >= 1.5*s1)
	t8, ok8 := value("throughput_8_stream_gbit_s", "tunnel")
	add("8 streams Gbit/s", ">= 1", t8, ok8, t8 >= 1)
	o, oko := value("open_p50_ms", "tunnel")
	add("session open p50 ms", "<= 1", o, oko, o <= 1)
	i, oki := value("interactive_under_bulk_p99_ms", "tunnel")
	add("interactive p99 under bulk ms", "<= 10", i, oki, i <= 10)
	r, okr := value("rss_idle_mib", "tunnel")
	add("connector idle RSS MiB", "<= 25", r, okr, r <= 25)
	p, okp := value("rss_per_session_kib", "tunnel")
	add("connector KiB per idle session", "<= 100", p, okp, p <= 100)
	return out
}

func round(v float64) float64 { return math.Round(v*1000) / 1000 }

// report prints the table and writes build/bench.json.
func report(e *env) {
	resultsMu.Lock()
	defer resultsMu.Unlock()
	if len(results) == 0 {
		return
	}
	var names []string
	for _, p := range e.paths {
		names = append(names, p.name)
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "\nmetric\t"+join(names, "\t")+"\t")
	for _, m := range metricOrder {
		if results[m] == nil {
			continue
		}
		row := m
		for _, n := range names {
			if v, ok := results[m][n]; ok {
				row += fmt.Sprintf("\t%.3f", v)
			} else {
				row += "\t-"
			}
		}
		fmt.Fprintln(w, row+"\t")
	}
	w.Flush()
	if e.skipSSH != "" {
		fmt.Printf("ssh -R column skipped: %s\n", e.skipSSH)
	}
	gs := goals()
	fmt.Println("\ngoals (tunnel):")
	for _, g := range gs {
		mark := "met"
		if !g.Met {
			mark = "NOT met"
		}
		fmt.Printf("  %-34s %9.3f  (goal %s)  %s\n", g.Name, g.Value, g.Target, mark)
	}
	out := map[string]any{
		"generated":   time.Now().UTC().Format(time.RFC3339),
		"go":          runtime.Version(),
		"cpus":        runtime.NumCPU(),
		"paths":       names,
		"metrics":     roundAll(results),
		"goals":       gs,
		"ssh_skipped": e.skipSSH,
		"notes": "loopback; the connector is a separate process (the bench binary re-executed); " +
			"open = dial + one 1-byte echo; interactive = 64-byte echo while a bulk stream runs on the same path",
	}
	data, _ := json.MarshalIndent(out, "", "  ")
	dir := os.Getenv("VAULTPAM_BUILD")
	if dir == "" {
		dir = filepath.Join(moduleRoot(), "build")
	}
	os.MkdirAll(dir, 0o755)
	file := filepath.Join(dir, "bench.json")
	if err := os.WriteFile(file, append(data, '\n'), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "bench: writing", file+":", err)
		return
	}
	fmt.Println("\nfigures written to", file)
}

func roundAll(m map[string]map[string]float64) map[string]map[string]float64 {
	out := map[string]map[string]float64{}
	for k, v := range m {
		out[k] = map[string]float64{}
		for p, x := range v {
			out[k][p] = round(x)
		}
	}
	return out
}

func join(s []string, sep string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += sep
		}
		out += x
	}
	return out
}

// moduleRoot finds the directory holding go.mod above the working directory.
func moduleRoot() string {
	dir, _ := os.Getwd()
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			return dir
		}
	}
}
