package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"runtime/trace"
	"sync"
	"time"

	"github.com/batonhq/baton/upgrade"
)

// EnvProfile names the directory where an upgrade verb writes its profile:
// the environment twin of the hidden --profile flag.
const EnvProfile = "BATON_PROFILE"

// Files a profiled verb writes into its directory.
const (
	profileCPU          = "cpu.pprof"     // go tool pprof -top baton cpu.pprof
	profileTrace        = "trace.out"     // go tool trace trace.out
	profileTimelineFile = "timeline.json" // a profileTimeline
)

// profileStart is when main began, for the timeline: what comes before it
// (exec, the dynamic loader, the runtime and package initialisation) is
// measured by whoever started baton, from profileTimeline.MainUnixNano.
var profileStart time.Time

// profileTimeline is what a profiled verb writes to timeline.json: when
// main began (wall clock, for the caller to subtract its exec time from),
// when the verb began and returned (offsets from main; writing the profile
// and the trace comes after), the verb's phases (upgrade.Options.Span) and
// its steps. Nested phases are named parent/child ("spawn/observe").
type profileTimeline struct {
	MainUnixNano int64          `json:"main_unix_ns"`
	VerbNano     time.Duration  `json:"verb_start_ns"`
	ExitNano     time.Duration  `json:"exit_ns"`
	Spans        []profileSpan  `json:"spans"`
	Steps        []upgrade.Step `json:"steps"`
}

type profileSpan struct {
	Name  string        `json:"name"`
	Start time.Duration `json:"start_ns"`
	Dur   time.Duration `json:"dur_ns"`
}

// profiler records one verb: a CPU profile, an execution trace (each phase
// a trace region) and the timeline. It is a developer's tool: the flag is
// hidden and nothing of it runs without the flag.
type profiler struct {
	dir        string
	cpu, trace *os.File
	mu         sync.Mutex
	stack      []string
	tl         profileTimeline
}

// startProfile starts profiling into dir (created if missing).
func startProfile(dir string) (*profiler, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("--profile: %w", err)
	}
	p := &profiler{dir: dir, tl: profileTimeline{MainUnixNano: profileStart.UnixNano(), VerbNano: time.Since(profileStart)}}
	var err error
	if p.cpu, err = os.Create(filepath.Join(dir, profileCPU)); err != nil {
		return nil, fmt.Errorf("--profile: %w", err)
	}
	if p.trace, err = os.Create(filepath.Join(dir, profileTrace)); err != nil {
		p.cpu.Close()
		return nil, fmt.Errorf("--profile: %w", err)
	}
	if err := pprof.StartCPUProfile(p.cpu); err != nil {
		p.cpu.Close()
		p.trace.Close()
		return nil, fmt.Errorf("--profile: %w", err)
	}
	if err := trace.Start(p.trace); err != nil {
		pprof.StopCPUProfile()
		p.cpu.Close()
		p.trace.Close()
		return nil, fmt.Errorf("--profile: %w", err)
	}
	return p, nil
}

// span is upgrade.Options.Span: a trace region and a timeline entry.
func (p *profiler) span(name string) func() {
	p.mu.Lock()
	full := name
	if n := len(p.stack); n > 0 {
		full = p.stack[n-1] + "/" + name
	}
	p.stack = append(p.stack, full)
	p.mu.Unlock()
	region := trace.StartRegion(context.Background(), full)
	begin := time.Now()
	return func() {
		end := time.Now()
		region.End()
		p.mu.Lock()
		defer p.mu.Unlock()
		if n := len(p.stack); n > 0 {
			p.stack = p.stack[:n-1]
		}
		p.tl.Spans = append(p.tl.Spans, profileSpan{Name: full, Start: begin.Sub(profileStart), Dur: end.Sub(begin)})
	}
}

// stop ends profiling and writes the timeline with rep's steps.
func (p *profiler) stop(rep *upgrade.Report) error {
	p.tl.ExitNano = time.Since(profileStart) // before the flushes below
	trace.Stop()
	pprof.StopCPUProfile()
	if rep != nil {
		p.tl.Steps = rep.Steps
	}
	data, err := json.MarshalIndent(&p.tl, "", "  ")
	if err == nil {
		err = os.WriteFile(filepath.Join(p.dir, profileTimelineFile), append(data, '\n'), 0o644)
	}
	return errors.Join(err, p.cpu.Close(), p.trace.Close())
}
