package integration

// -bench.profile DIR: every `baton upgrade start` a benchmark runs writes
// its CPU profile, execution trace and timeline (the hidden --profile flag,
// BATON_PROFILE) into DIR/<benchmark>/<cycle>, and the benchmark logs the
// median time of each phase over its cycles, the table of BENCHMARKS.md:
//
//	go test -run '^$' -bench 'UpgradeTime/nginx' -benchtime 10x ./integration/ -bench.profile /tmp/prof
//	go tool pprof -top /tmp/prof/BenchmarkUpgradeTime_nginx/*/cpu.pprof   (all cycles merged)
//	go tool trace /tmp/prof/BenchmarkUpgradeTime_nginx/0/trace.out

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

var benchProfile = flag.String("bench.profile", "", "directory where each baton upgrade a benchmark runs writes its profile, trace and timeline")

// benchTimeline is what the baton CLI writes to timeline.json
// (cmd/baton/profile.go), as far as the table needs it.
type benchTimeline struct {
	MainUnixNano int64         `json:"main_unix_ns"`
	VerbNano     time.Duration `json:"verb_start_ns"`
	ExitNano     time.Duration `json:"exit_ns"`
	Spans        []struct {
		Name string        `json:"name"`
		Dur  time.Duration `json:"dur_ns"`
	} `json:"spans"`
}

// benchPhases collects, per benchmark, the phases of each profiled cycle.
var benchPhases = struct {
	mu     sync.Mutex
	cycles map[string][]map[string]time.Duration
	counts map[string]map[string]int
}{cycles: map[string][]map[string]time.Duration{}, counts: map[string]map[string]int{}}

// benchProfileDir returns the directory the next profiled cycle of tb
// writes to, "" when -bench.profile is not given.
func benchProfileDir(tb testing.TB) string {
	if *benchProfile == "" {
		return ""
	}
	benchPhases.mu.Lock()
	n := len(benchPhases.cycles[tb.Name()])
	benchPhases.mu.Unlock()
	return filepath.Join(*benchProfile, strings.ReplaceAll(tb.Name(), "/", "_"), strconv.Itoa(n))
}

// recordProfile reads the timeline of a cycle that began (exec) at begin and
// ended (the old master gone) at end.
func recordProfile(tb testing.TB, dir string, begin, end time.Time) {
	data, err := os.ReadFile(filepath.Join(dir, "timeline.json"))
	if err != nil {
		tb.Errorf("profile: %v", err)
		return
	}
	var tl benchTimeline
	if err := json.Unmarshal(data, &tl); err != nil {
		tb.Errorf("profile: %s: %v", dir, err)
		return
	}
	main := time.Unix(0, tl.MainUnixNano)
	phases := map[string]time.Duration{
		"0 exec until main":            main.Sub(begin),
		"1 main until the verb":        tl.VerbNano,
		"2 verb":                       tl.ExitNano - tl.VerbNano,
		"3 verb's end until old gone":  end.Sub(main.Add(tl.ExitNano)),
		"4 total: exec until old gone": end.Sub(begin),
	}
	counts := map[string]int{}
	for _, s := range tl.Spans {
		phases[s.Name] += s.Dur
		counts[s.Name]++
	}
	benchPhases.mu.Lock()
	defer benchPhases.mu.Unlock()
	benchPhases.cycles[tb.Name()] = append(benchPhases.cycles[tb.Name()], phases)
	if benchPhases.counts[tb.Name()] == nil {
		benchPhases.counts[tb.Name()] = map[string]int{}
	}
	for k, n := range counts {
		benchPhases.counts[tb.Name()][k] += n
	}
}

// resetPhases forgets tb's profiled cycles: a benchmark function runs once
// with b.N = 1 before its timed run.
func resetPhases(tb testing.TB) {
	benchPhases.mu.Lock()
	defer benchPhases.mu.Unlock()
	delete(benchPhases.cycles, tb.Name())
	delete(benchPhases.counts, tb.Name())
}

// logPhases logs the median of each phase over tb's profiled cycles as a
// Markdown table.
func logPhases(tb testing.TB) {
	benchPhases.mu.Lock()
	cycles := benchPhases.cycles[tb.Name()]
	counts := benchPhases.counts[tb.Name()]
	benchPhases.mu.Unlock()
	if len(cycles) == 0 {
		return
	}
	var names []string
	for k := range cycles[0] {
		names = append(names, k)
	}
	slices.Sort(names)
	var b strings.Builder
	fmt.Fprintf(&b, "phases of baton upgrade start over %d profiled cycles (medians; nested phases are parent/child; n = times per cycle):\n\n| phase | ms | n |\n| --- | ---: | ---: |\n", len(cycles))
	for _, name := range names {
		var ds []time.Duration
		for _, c := range cycles {
			ds = append(ds, c[name])
		}
		n := "" // the top-level rows are once per cycle
		if c, ok := counts[name]; ok {
			n = fmt.Sprintf("%.1f", float64(c)/float64(len(cycles)))
		}
		fmt.Fprintf(&b, "| %s | %.2f | %s |\n", name, ms(benchMedian(ds)), n)
	}
	tb.Log(b.String())
}
