package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/batonhq/baton/pidfile"
	"github.com/batonhq/baton/procs"
	"github.com/batonhq/baton/upgrade/load"
)

// Options configures [Run]. The zero value of every field but Exe is usable.
type Options struct {
	// Exe is the baton binary the demo runs as master, app and
	// orchestrator. Required.
	Exe string
	// Workers is the number of demo-app workers under the master; 0 means 2.
	Workers int
	// Concurrency is the number of load clients per mode (keep-alive and
	// new-connection); 0 means 4.
	Concurrency int
	// Progress receives the progress lines; nil discards them.
	Progress io.Writer
	// Live redraws a request counter below the last progress line a few
	// times a second. Set it only when Progress is a terminal.
	Live bool
	// Env is the environment the demo's children start from, before the
	// variables that would change them are dropped; nil means os.Environ().
	Env []string
}

// Names of the files in the demo's temporary directory ($DIR).
const (
	pidName = "demo.pid"   // the master's pid file
	envName = "demo.env"   // the release: read by the master for every generation
	logName = "master.log" // the first master's output
)

// demo is one run of the demo. It is used by one goroutine, except out.
type demo struct {
	opts    Options
	out     *progress
	dir     string
	pidfile string
	envfile string
	logfile string
	addr    string
	env     []string // environment of every child
	rep     *Report

	master  *exec.Cmd     // the first master, our child
	exited  chan struct{} // closed when master has been reaped
	tracked *tracker      // every process the demo started that it saw
	loads   []*load.Run

	serving  int      // the master the pid file should name
	parked   int      // the master an upgrade parked
	failures []string // steps that did not do what they should
}

// Run runs the demo and always returns a report; the error says what went
// wrong, if anything. It returns only after everything it started has
// stopped (or could not be stopped: [Report.Left]) and its temporary
// directory is gone, also when ctx is cancelled.
func Run(ctx context.Context, opts Options) (rep *Report, err error) {
	begin := time.Now()
	opts = opts.withDefaults()
	rep = &Report{Workers: opts.Workers, ByVersion: map[string]int{}}
	if opts.Exe == "" {
		return rep, errors.New("demo: no baton executable given")
	}
	dir, err := os.MkdirTemp("", "baton-demo-")
	if err != nil {
		return rep, fmt.Errorf("demo: %w", err)
	}
	d := &demo{
		opts:    opts,
		out:     newProgress(opts.Progress, opts.Live),
		dir:     dir,
		pidfile: filepath.Join(dir, pidName),
		envfile: filepath.Join(dir, envName),
		logfile: filepath.Join(dir, logName),
		env:     childEnv(opts.Env),
		rep:     rep,
		tracked: newTracker(),
	}
	defer func() {
		// Cleanup runs even when ctx was cancelled (Ctrl-C): it has its own
		// deadline.
		if cerr := d.cleanup(); cerr != nil {
			d.failures = append(d.failures, cerr.Error())
		}
		if len(d.failures) > 0 && err == nil {
			err = fmt.Errorf("demo: %s", strings.Join(d.failures, "; "))
		}
		if err != nil {
			rep.Error = err.Error()
		}
		rep.Elapsed = time.Since(begin)
	}()
	err = d.run(ctx)
	if ctx.Err() != nil {
		err = fmt.Errorf("demo: interrupted: %w", ctx.Err())
	}
	return rep, err
}

func (o Options) withDefaults() Options {
	if o.Workers == 0 {
		o.Workers = 2
	}
	if o.Concurrency == 0 {
		o.Concurrency = 4
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.Env == nil {
		o.Env = os.Environ()
	}
	return o
}

// run is the demo's script: the master, the load, then the steps of the
// table. A step that fails ends it; cleanup follows.
func (d *demo) run(ctx context.Context) error {
	d.out.linef("baton demo: a baton master with %d workers of a demo app, upgraded under load (temp dir %s)", d.opts.Workers, d.dir)
	if err := d.writeRelease("v1", false); err != nil {
		return err
	}
	if err := d.startMaster(ctx); err != nil {
		return err
	}
	if err := d.startLoad(ctx); err != nil {
		return err
	}
	if err := d.steady(ctx, "steady load on v1", time.Second); err != nil {
		return err
	}
	for _, s := range script {
		if err := d.step(ctx, s); err != nil {
			return err
		}
	}
	d.stopLoad()
	return nil
}

// writeRelease rewrites the envfile the master re-reads for every new
// generation: version, and with broken a /health that answers 500.
func (d *demo) writeRelease(version string, broken bool) error {
	var b strings.Builder
	fmt.Fprintf(&b, "DEMO_VERSION=%s\n", version)
	if broken {
		b.WriteString("DEMO_FAIL=1\n")
	}
	tmp := d.envfile + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("demo: write envfile: %w", err)
	}
	if err := os.Rename(tmp, d.envfile); err != nil {
		return fmt.Errorf("demo: write envfile: %w", err)
	}
	if version != "v1" {
		d.out.linef("▶ new release: $DIR/%s now reads %s (the next master's workers read it)",
			envName, strings.Join(strings.Fields(b.String()), " "))
	}
	return nil
}

// pids reads the pid file and its .oldbin; 0 for a missing one, one that
// does not parse, or one naming a process that is gone or not the one that
// wrote it.
func (d *demo) pids() (current, oldbin int) {
	read := func(path string) int {
		pid, err := pidfile.ReadLive(path, procs.StartTime)
		if err != nil {
			return 0
		}
		return pid
	}
	return read(d.pidfile), read(d.pidfile + ".oldbin")
}

func (d *demo) pass(st *Step, note string) {
	st.OK = true
	st.Note = note
	d.rep.Steps = append(d.rep.Steps, *st)
	d.out.linef("  ✓ %s (%s)", st.Note, dur(st.Elapsed))
}

func (d *demo) fail(st *Step, note string) {
	st.OK = false
	st.Note = note
	d.rep.Steps = append(d.rep.Steps, *st)
	d.failures = append(d.failures, st.Name+": "+st.Note)
	d.out.linef("  ✗ %s (%s)", st.Note, dur(st.Elapsed))
}
