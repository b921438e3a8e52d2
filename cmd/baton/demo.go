package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/batonhq/baton/upgrade"
	"github.com/batonhq/baton/upgrade/load"
)

// demoMarkerEnv is set, to the demo's own temporary directory, in the
// environment of every process the demo starts. The masters pass it on to
// their workers and to the masters they re-exec, so scanning
// /proc/PID/environ for it finds everything the demo started, however it was
// reparented, and nothing else.
const demoMarkerEnv = "DEMO_RUN_DIR"

// demoCommand is `baton demo`: the whole product in half a minute, on
// loopback, in a temporary directory, with nothing but this binary.
func demoCommand() *cli.Command {
	return &cli.Command{
		Name:  "demo",
		Usage: "show a zero-downtime upgrade, a commit and an automatic rollback under load",
		Description: `Starts "baton run" with 2 workers of a built-in demo app (v1) on a free
loopback port, puts it under load (keep-alive and new-connection clients),
upgrades it to v2 with "baton upgrade start" and "baton upgrade commit", then
tries a broken v3 whose health check fails, which "baton upgrade start" rolls
back by itself. It prints every command it runs and a report: requests served
and failed, each step's time, the version serving at the end. Everything it
started is stopped when it ends, also on Ctrl-C.

Exit status 0 when every step did what it should and no request failed, 1
otherwise.`,
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "workers", Value: 2, Usage: "demo-app workers under the master", EnvVars: []string{"BATON_WORKERS"}},
			&cli.IntFlag{Name: "concurrency", Value: 4, Usage: "load clients per mode (keep-alive and new-connection)", EnvVars: []string{"BATON_CONCURRENCY"}},
			&cli.BoolFlag{Name: "json", Usage: "print the report as JSON on stdout (progress goes to stderr)", EnvVars: []string{"BATON_JSON"}},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usageErrorf("demo: takes no arguments, got %q", c.Args().First())
			}
			if c.Int("workers") < 1 || c.Int("concurrency") < 1 {
				return usageErrorf("demo: --workers and --concurrency must be at least 1")
			}
			exe, err := os.Executable()
			if err != nil {
				return fmt.Errorf("demo: find own executable: %w", err)
			}
			// SIGPIPE too: with its output gone (`baton demo | head`) the
			// demo must still stop what it started, not die of the signal
			// Go raises on a write to a closed stdout.
			ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGPIPE)
			defer stop()

			progress := io.Writer(os.Stdout)
			if c.Bool("json") {
				progress = os.Stderr
			}
			out := newDemoOut(progress)
			rep, err := runDemo(ctx, demoOptions{
				exe:         exe,
				workers:     c.Int("workers"),
				concurrency: c.Int("concurrency"),
				out:         out,
			})
			// Everything is stopped: from now on a closed output only fails
			// the writes (EPIPE) instead of killing the process with SIGPIPE.
			signal.Ignore(syscall.SIGPIPE)
			if c.Bool("json") {
				enc := json.NewEncoder(os.Stdout)
				enc.SetIndent("", "  ")
				if jerr := enc.Encode(rep); jerr != nil && err == nil {
					err = fmt.Errorf("demo: write report: %w", jerr)
				}
			} else {
				rep.print(out)
			}
			if err != nil {
				return withCode(exitFailed, err)
			}
			return nil
		},
	}
}

// demoOptions configures runDemo.
type demoOptions struct {
	exe         string // the baton binary to run as master, app and orchestrator
	workers     int
	concurrency int
	out         *demoOut
}

// DemoStep is one step of the demo as the report shows it.
type DemoStep struct {
	Name    string        `json:"name"`
	Command string        `json:"command,omitempty"`
	Elapsed time.Duration `json:"elapsed_ns"`
	OK      bool          `json:"ok"`
	Note    string        `json:"note"`
}

// DemoReport is what `baton demo` found. Its JSON form is what --json prints
// and what the end-to-end test asserts.
type DemoReport struct {
	Addr        string         `json:"addr"`
	Workers     int            `json:"workers"`
	Steps       []DemoStep     `json:"steps"`
	Served      int            `json:"served"`
	Failed      int            `json:"failed"`
	Races       int            `json:"races"`
	Failures    map[string]int `json:"failures,omitempty"`
	Samples     []string       `json:"samples,omitempty"`
	ByVersion   map[string]int `json:"by_version"`
	Load        []string       `json:"load"`
	RolledBack  bool           `json:"rolled_back"`
	Final       string         `json:"final_version"`
	FinalMaster int            `json:"final_master"`
	Stopped     int            `json:"processes_stopped"`
	Left        []int          `json:"processes_left"`
	Elapsed     time.Duration  `json:"elapsed_ns"`
	Error       string         `json:"error,omitempty"`
}

// demo is one run of the demo.
type demo struct {
	opts    demoOptions
	out     *demoOut
	dir     string
	pidfile string
	envfile string
	logfile string
	addr    string
	marker  string   // demoMarkerEnv=dir
	env     []string // environment of every child
	rep     *DemoReport

	master   *exec.Cmd     // the first master, our child
	exited   chan struct{} // closed when master has been reaped
	loads    []*load.Run
	failures []string // steps that did not do what they should
}

// runDemo runs the demo and always returns a report; the error says what went
// wrong, if anything.
func runDemo(ctx context.Context, opts demoOptions) (rep *DemoReport, err error) {
	begin := time.Now()
	rep = &DemoReport{Workers: opts.workers, ByVersion: map[string]int{}}
	dir, err := os.MkdirTemp("", "baton-demo-")
	if err != nil {
		return rep, fmt.Errorf("demo: %w", err)
	}
	d := &demo{
		opts:    opts,
		out:     opts.out,
		dir:     dir,
		pidfile: filepath.Join(dir, "demo.pid"),
		envfile: filepath.Join(dir, "demo.env"),
		logfile: filepath.Join(dir, "master.log"),
		marker:  demoMarkerEnv + "=" + dir,
		rep:     rep,
	}
	d.env = append(demoChildEnv(os.Environ()), d.marker)
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

// run is the demo's script. A step that fails ends it; cleanup follows.
func (d *demo) run(ctx context.Context) error {
	d.out.linef("baton demo: a baton master with %d workers of a demo app, upgraded under load (temp dir %s)", d.opts.workers, d.dir)

	// 1. Start the master running v1.
	if err := d.writeEnv("v1", false); err != nil {
		return err
	}
	v1, err := d.startMaster(ctx)
	if err != nil {
		return err
	}

	// 2. Load: keep-alive and new-connection clients, every answer checked.
	if err := d.startLoad(ctx); err != nil {
		return err
	}
	if err := d.steady(ctx, "steady load on v1", time.Second); err != nil {
		return err
	}

	// 3. upgrade start to v2: USR2, the new master inherits the socket, its
	// workers get ready, health checks pass, the old workers drain.
	if err := d.writeEnv("v2", false); err != nil {
		return err
	}
	check := "http://" + d.addr + "/health"
	code, st := d.baton(ctx, "upgrade start → v2", "upgrade", "start", "--pidfile", d.pidfile, "--check", check)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	v2, oldbin := d.pids()
	switch {
	case code != exitOK:
		d.fail(st, "exit %d, want 0", code)
	case oldbin != v1 || v2 == v1 || v2 == 0:
		d.fail(st, "pid file %d and .oldbin %d, want a new master and %d parked", v2, oldbin, v1)
	default:
		d.pass(st, "new master %d serves v2, old master %d parked without workers", v2, v1)
	}
	if !st.OK {
		return errors.New("demo: upgrade to v2 failed")
	}

	// 4. upgrade commit: QUIT to the old master.
	code, st = d.baton(ctx, "upgrade commit", "upgrade", "commit", "--pidfile", d.pidfile)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if d.settled(ctx, st, code, exitOK, "0", v2) {
		d.pass(st, "old master %d gone; v2 serves alone", v1)
	}
	if !st.OK {
		return errors.New("demo: commit failed")
	}
	if err := d.steady(ctx, "steady load on v2", 500*time.Millisecond); err != nil {
		return err
	}

	// 5. A broken v3: its /health answers 500, so upgrade start rolls back
	// by itself and exits 1, with v2 serving as before.
	if err := d.writeEnv("v3", true); err != nil {
		return err
	}
	code, st = d.baton(ctx, "upgrade start → v3 (broken: /health 500)", "upgrade", "start", "--pidfile", d.pidfile, "--check", check)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if d.settled(ctx, st, code, exitFailed, "1 (rolled back)", v2) {
		d.rep.RolledBack = true
		d.pass(st, "exit 1: health check failed, rolled back; v2 (master %d) serves", v2)
	}
	if err := d.steady(ctx, "steady load after the rollback", 500*time.Millisecond); err != nil {
		return err
	}
	d.stopLoad()
	if !st.OK {
		return errors.New("demo: rollback of v3 failed")
	}
	return nil
}

// writeEnv rewrites the envfile the master re-reads for every new
// generation.
func (d *demo) writeEnv(version string, fail bool) error {
	var b strings.Builder
	fmt.Fprintf(&b, "DEMO_VERSION=%s\n", version)
	if fail {
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
		d.out.linef("▶ new release: $DIR/demo.env now reads %s (the next master's workers read it)",
			strings.Join(strings.Fields(b.String()), " "))
	}
	return nil
}

// startMaster starts `baton run` on a free loopback port and waits until it
// reports ready and answers. The port is picked by binding port 0 and
// closing it; another program may take it in between, so a master that exits
// before it is ready is retried on a new port.
func (d *demo) startMaster(ctx context.Context) (int, error) {
	var lastErr error
	for range 3 {
		addr, err := demoFreePort()
		if err != nil {
			return 0, err
		}
		d.addr = addr
		d.rep.Addr = addr
		args := []string{"run", "--pidfile", d.pidfile, "--listen", addr,
			"--workers", strconv.Itoa(d.opts.workers), "--ready", "notify", "--envfile", d.envfile,
			"--stop-timeout", "5s", "--", d.opts.exe, "demo-app"}
		st := &DemoStep{Name: "start baton run, v1", Command: "baton " + strings.Join(demoShort(args, d.dir, d.opts.exe), " ")}
		d.out.linef("▶ %s\n  $ %s", st.Name, st.Command)
		begin := time.Now()
		log, err := os.OpenFile(d.logfile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return 0, fmt.Errorf("demo: %w", err)
		}
		cmd := exec.Command(d.opts.exe, args...)
		cmd.Dir = d.dir
		cmd.Env = d.env
		cmd.Stdout, cmd.Stderr = log, log
		// Its own process group keeps the terminal's Ctrl-C away from it:
		// the demo stops it in order. Pdeathsig covers the demo being
		// killed outright.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
		err = cmd.Start()
		log.Close()
		if err != nil {
			return 0, fmt.Errorf("demo: start master: %w", err)
		}
		d.master = cmd
		d.exited = make(chan struct{})
		go func() {
			_ = cmd.Wait()
			close(d.exited)
		}()
		pid, err := d.waitReady(ctx)
		st.Elapsed = time.Since(begin)
		if err == nil {
			d.pass(st, "master %d ready on http://%s/, %d workers", pid, addr, d.opts.workers)
			return pid, nil
		}
		lastErr = err
		select {
		case <-d.exited:
			// It died (likely the port was taken): try another port.
			d.out.linef("  ✗ %v; trying another port\n%s", err, demoTail(d.logfile, 5))
			continue
		default:
		}
		d.fail(st, "%v", err)
		d.out.linef("%s", demoTail(d.logfile, 20))
		return 0, err
	}
	return 0, lastErr
}

// waitReady waits until the pid file names a master whose status says ready
// and the app answers on the port. The master writes its status file on
// every change; there is no event to wait on from outside, so this polls it,
// bounded by a deadline.
func (d *demo) waitReady(ctx context.Context) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if pid := demoReadPID(d.pidfile); pid > 0 {
			st, err := upgrade.ReadStatus(upgrade.StatusPath(d.pidfile, pid))
			if err == nil && st.Ready {
				if v, err := d.probe(ctx, 1); err == nil && onlyVersion(v, "v1") {
					return pid, nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("demo: master not ready: %w", ctx.Err())
		case <-d.exited:
			return 0, fmt.Errorf("demo: master exited before it was ready (%v)", d.master.ProcessState)
		case <-tick.C:
		}
	}
}

// startLoad starts one keep-alive and one new-connection load run, and a
// live counter on a terminal.
func (d *demo) startLoad(ctx context.Context) error {
	// The load outlives ctx only until stopLoad; cleanup stops it too.
	for _, mode := range []load.Mode{load.KeepAlive, load.NewConn} {
		r, err := load.Start(context.WithoutCancel(ctx), load.Options{
			Target:      "http://" + d.addr + "/",
			Concurrency: d.opts.concurrency,
			Mode:        mode,
			Timeout:     5 * time.Second,
			Expect:      demoExpect,
		})
		if err != nil {
			d.stopLoad()
			return fmt.Errorf("demo: %w", err)
		}
		d.loads = append(d.loads, r)
	}
	d.out.linef("▶ load: %d keep-alive + %d new-connection clients on http://%s/, every answer checked",
		d.opts.concurrency, d.opts.concurrency, d.addr)
	d.out.live(func() string {
		ok, failed := d.counts()
		return fmt.Sprintf("  … %d requests served, %d failed", ok, failed)
	})
	return nil
}

func (d *demo) counts() (ok, failed int) {
	for _, r := range d.loads {
		o, f := r.Counts()
		ok += o
		failed += f
	}
	return ok, failed
}

// steady lets the load run for a while, so the report shows traffic between
// the steps.
func (d *demo) steady(ctx context.Context, name string, dur time.Duration) error {
	t := time.NewTimer(dur)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
	}
	ok, failed := d.counts()
	d.out.linef("  %s: %d requests served so far, %d failed", name, ok, failed)
	return nil
}

// stopLoad stops the load runs (a second call does nothing) and adds their
// results to the report.
func (d *demo) stopLoad() {
	d.out.live(nil)
	if len(d.loads) == 0 {
		return
	}
	for _, r := range d.loads {
		res := r.Stop()
		d.rep.Served += res.OK
		d.rep.Failed += res.Failed
		d.rep.Races += res.Races
		for k, n := range res.Failures {
			if d.rep.Failures == nil {
				d.rep.Failures = map[string]int{}
			}
			d.rep.Failures[k] += n
		}
		d.rep.Samples = append(d.rep.Samples, res.Samples...)
		for tag, n := range res.Tags {
			d.rep.ByVersion[demoVersion([]byte(tag))] += n
		}
		d.rep.Load = append(d.rep.Load, res.String())
	}
	d.loads = nil
	if d.rep.Failed > 0 {
		d.failures = append(d.failures, fmt.Sprintf("%d requests failed", d.rep.Failed))
	}
}

// baton runs this binary with args as a child process, shows its output
// indented, and returns its exit code and the step to complete.
func (d *demo) baton(ctx context.Context, name string, args ...string) (int, *DemoStep) {
	st := &DemoStep{Name: name, Command: "baton " + strings.Join(demoShort(args, d.dir, d.opts.exe), " ")}
	d.out.linef("▶ %s\n  $ %s", name, st.Command)
	cmd := exec.CommandContext(ctx, d.opts.exe, args...)
	cmd.Dir = d.dir
	cmd.Env = d.env
	w := &demoLineWriter{out: d.out, prefix: "    │ "}
	cmd.Stdout, cmd.Stderr = w, w
	// On Ctrl-C the orchestrator gets TERM (its own group keeps the
	// terminal's INT away) and a bounded time to finish before KILL.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	begin := time.Now()
	err := cmd.Run()
	st.Elapsed = time.Since(begin)
	w.flush()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		code = -1
		st.Note = err.Error()
	}
	return code, st
}

func (d *demo) pass(st *DemoStep, format string, args ...any) {
	st.OK = true
	st.Note = fmt.Sprintf(format, args...)
	d.rep.Steps = append(d.rep.Steps, *st)
	d.out.linef("  ✓ %s (%s)", st.Note, demoDur(st.Elapsed))
}

func (d *demo) fail(st *DemoStep, format string, args ...any) {
	st.OK = false
	st.Note = fmt.Sprintf(format, args...)
	d.rep.Steps = append(d.rep.Steps, *st)
	d.failures = append(d.failures, st.Name+": "+st.Note)
	d.out.linef("  ✗ %s (%s)", st.Note, demoDur(st.Elapsed))
}

// pids reads the pid file and its .oldbin; 0 for a missing one.
// settled checks that a step ended with exit code want (wantText in the
// message), the pid file naming master and no .oldbin, and only v2
// answering; it fails st with the first thing that is not so. What it saw
// is the report's final state: the last step's observation stays.
func (d *demo) settled(ctx context.Context, st *DemoStep, code, want int, wantText string, master int) bool {
	now, oldbin := d.pids()
	versions, perr := d.probe(ctx, 20)
	d.rep.FinalMaster = now
	d.rep.Final = strings.Join(slices.Sorted(maps.Keys(versions)), ",")
	switch {
	case code != want:
		d.fail(st, "exit %d, want %s", code, wantText)
	case now != master || oldbin != 0:
		d.fail(st, "pid file %d, .oldbin %d; want %d and none", now, oldbin, master)
	case perr != nil:
		d.fail(st, "probe: %v", perr)
	case !onlyVersion(versions, "v2"):
		d.fail(st, "serving %s, want v2 only", formatVersions(versions))
	default:
		return true
	}
	return false
}

func (d *demo) pids() (current, oldbin int) {
	return demoReadPID(d.pidfile), demoReadPID(d.pidfile + ".oldbin")
}

// probe makes n requests on new connections and tallies the versions that
// answered.
func (d *demo) probe(ctx context.Context, n int) (map[string]int, error) {
	client := &http.Client{
		Timeout:   2 * time.Second,
		Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
	}
	defer client.CloseIdleConnections()
	seen := map[string]int{}
	for range n {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+d.addr+"/", nil)
		if err != nil {
			return seen, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return seen, err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return seen, err
		}
		if err := demoExpect(resp.StatusCode, body); err != nil {
			return seen, err
		}
		seen[demoVersion(body)]++
	}
	return seen, nil
}

// cleanup stops the load and everything the demo started: QUIT to every
// master (graceful), then KILL to the master's process group and to every
// process still carrying the demo's marker. It has its own deadline so it
// runs after Ctrl-C too, and it removes the temporary directory.
func (d *demo) cleanup() error {
	d.stopLoad()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	begin := time.Now()
	st := &DemoStep{Name: "stop everything", Command: "kill -QUIT <masters>"}
	d.out.linef("▶ %s", st.Name)

	started := demoProcesses(d.marker)
	// Only pids that carry the marker are signalled: a stale pid file never
	// makes the demo signal a stranger.
	ours := map[int]bool{}
	for _, pid := range started {
		ours[pid] = true
	}
	cur, old := d.pids()
	for _, pid := range []int{cur, old, d.masterPID()} {
		if pid > 0 && ours[pid] {
			_ = syscall.Kill(pid, syscall.SIGQUIT)
		}
	}
	left := demoWaitGone(ctx, d.marker, 8*time.Second)
	if len(left) > 0 {
		d.out.linef("  %d processes still there after QUIT; killing them", len(left))
		if pid := d.masterPID(); pid > 0 {
			_ = syscall.Kill(-pid, syscall.SIGKILL) // the master's process group
		}
		for _, pid := range left {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		left = demoWaitGone(ctx, d.marker, 5*time.Second)
	}
	if d.exited != nil {
		select {
		case <-d.exited:
		case <-ctx.Done():
		}
	}
	st.Elapsed = time.Since(begin)
	d.rep.Stopped = len(started)
	d.rep.Left = left
	var err error
	if len(left) > 0 {
		err = fmt.Errorf("demo: processes left behind: %v", left)
		d.fail(st, "%d processes left: %v", len(left), left)
	} else {
		d.pass(st, "%d processes stopped, none left", len(started))
	}
	if rerr := os.RemoveAll(d.dir); rerr != nil && err == nil {
		err = fmt.Errorf("demo: %w", rerr)
	}
	return err
}

func (d *demo) masterPID() int {
	if d.master == nil || d.master.Process == nil {
		return 0
	}
	return d.master.Process.Pid
}

// print writes the report for people.
func (r *DemoReport) print(out *demoOut) {
	var b strings.Builder
	fmt.Fprintf(&b, "\nreport (http://%s/, %d workers, %s in all)\n", r.Addr, r.Workers, demoDur(r.Elapsed))
	for _, st := range r.Steps {
		mark := "ok  "
		if !st.OK {
			mark = "FAIL"
		}
		fmt.Fprintf(&b, "  %s %-42s %8s  %s\n", mark, st.Name, demoDur(st.Elapsed), st.Note)
	}
	fmt.Fprintf(&b, "  requests served:   %d (%s)\n", r.Served, formatVersions(r.ByVersion))
	fmt.Fprintf(&b, "  requests failed:   %d", r.Failed)
	if r.Failed > 0 {
		fmt.Fprintf(&b, " %v, e.g. %q", r.Failures, r.Samples)
	}
	fmt.Fprintf(&b, "\n  keep-alive races:  %d (idle connections closed by a retiring generation; retried, as browsers and Go's net/http do)\n", r.Races)
	for _, l := range r.Load {
		fmt.Fprintf(&b, "    %s\n", l)
	}
	final := r.Final
	if final == "" {
		final = "unknown"
	}
	fmt.Fprintf(&b, "  serving at the end: %s (master %d)\n", final, r.FinalMaster)
	fmt.Fprintf(&b, "  processes left:    %d\n", len(r.Left))
	if r.Error != "" {
		fmt.Fprintf(&b, "FAILED: %s\n", r.Error)
	} else {
		b.WriteString("PASS: zero failed requests, v2 committed, broken v3 rolled back automatically\n")
	}
	out.linef("%s", strings.TrimRight(b.String(), "\n"))
}

// demoExpect accepts the demo app's answer to GET /.
func demoExpect(status int, body []byte) error {
	if status != http.StatusOK {
		return fmt.Errorf("status %d", status)
	}
	if !bytes.HasPrefix(body, []byte("version=")) {
		return fmt.Errorf("body %q: not the demo app", body)
	}
	return nil
}

// demoVersion extracts V from "version=V generation=G pid=P".
func demoVersion(body []byte) string {
	line, _, _ := strings.Cut(string(body), "\n")
	for _, f := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(f, "version="); ok {
			return v
		}
	}
	return "?"
}

func onlyVersion(seen map[string]int, v string) bool {
	return len(seen) == 1 && seen[v] > 0
}

func formatVersions(seen map[string]int) string {
	keys := slices.Sorted(maps.Keys(seen))
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s: %d", k, seen[k]))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// demoChildEnv is the environment for the demo's children: the caller's,
// without anything that would change what the children do behind the demo's
// back (BATON_* flag defaults, the demo app's DEMO_* settings, a service
// manager's sockets).
func demoChildEnv(environ []string) []string {
	out := make([]string, 0, len(environ))
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(name, "BATON_"), strings.HasPrefix(name, "DEMO_"),
			strings.HasPrefix(name, "LISTEN_"), name == "NOTIFY_SOCKET", name == "SERVER_STARTER_PORT":
			continue
		}
		out = append(out, kv)
	}
	return out
}

// demoFreePort returns a loopback address with a port nobody listened on a
// moment ago.
func demoFreePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("demo: find a free port: %w", err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr, nil
}

// demoReadPID reads a pid file; 0 when it is missing or unreadable.
func demoReadPID(path string) int {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}

// demoProcesses lists the live processes whose environment holds marker
// (NAME=VALUE), the calling process excluded. Zombies are not live.
func demoProcesses(marker string) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	want := []byte(marker)
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil || !slices.ContainsFunc(bytes.Split(env, []byte{0}), func(kv []byte) bool { return bytes.Equal(kv, want) }) {
			continue
		}
		if stat, err := os.ReadFile("/proc/" + e.Name() + "/stat"); err == nil {
			// The state follows the last ")" (comm may hold one).
			if i := bytes.LastIndexByte(stat, ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
				continue
			}
		}
		pids = append(pids, pid)
	}
	sort.Ints(pids)
	return pids
}

// demoWaitGone waits up to limit (and ctx) for every process carrying marker
// to exit, and returns those still there. It polls /proc: the processes are
// not all our children (re-exec'd masters are reparented), and a pidfd per
// process would not see new ones appear.
func demoWaitGone(ctx context.Context, marker string, limit time.Duration) []int {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		left := demoProcesses(marker)
		if len(left) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return left
		case <-tick.C:
		}
	}
}

// demoShort shortens a command line for display: the temp dir becomes $DIR
// and the executable "baton".
func demoShort(args []string, dir, exe string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		switch {
		case a == exe:
			a = "baton"
		case strings.HasPrefix(a, dir):
			a = "$DIR" + strings.TrimPrefix(a, dir)
		}
		out[i] = a
	}
	return out
}

// demoTail returns the last n lines of a log file, indented.
func demoTail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return "    (no master log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "    master log: " + strings.Join(lines, "\n    ")
}

func demoDur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2fs", d.Seconds())
	default:
		return fmt.Sprintf("%dms", d.Milliseconds())
	}
}

// demoOut writes progress lines and, on a terminal, a live counter line
// below them that the next progress line replaces. Safe for concurrent use.
type demoOut struct {
	mu      sync.Mutex
	w       io.Writer
	tty     bool
	liveFn  func() string
	shown   bool
	stopped chan struct{}
}

func newDemoOut(w io.Writer) *demoOut {
	o := &demoOut{w: w}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			o.tty = true
		}
	}
	return o
}

// linef prints one or more lines above the live counter.
func (o *demoOut) linef(format string, args ...any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.clearLocked()
	fmt.Fprintf(o.w, format+"\n", args...)
	o.drawLocked()
}

// live shows fn's line as a live counter, refreshed a few times a second, on
// a terminal only; nil removes it.
func (o *demoOut) live(fn func() string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.stopped != nil {
		close(o.stopped)
		o.stopped = nil
	}
	o.clearLocked()
	o.liveFn = fn
	if fn == nil || !o.tty {
		o.liveFn = nil
		return
	}
	stop := make(chan struct{})
	o.stopped = stop
	o.drawLocked()
	go func() {
		// A display refresh, not a wait for anything.
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				o.mu.Lock()
				if o.stopped == stop {
					o.clearLocked()
					o.drawLocked()
				}
				o.mu.Unlock()
			}
		}
	}()
}

func (o *demoOut) clearLocked() {
	if o.shown {
		fmt.Fprint(o.w, "\r\033[K")
		o.shown = false
	}
}

func (o *demoOut) drawLocked() {
	if o.liveFn != nil && o.tty {
		fmt.Fprint(o.w, o.liveFn())
		o.shown = true
	}
}

// demoLineWriter passes a child's output on to demoOut line by line.
type demoLineWriter struct {
	out    *demoOut
	prefix string
	buf    []byte
}

func (w *demoLineWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		w.out.linef("%s%s", w.prefix, w.buf[:i])
		w.buf = w.buf[i+1:]
	}
}

func (w *demoLineWriter) flush() {
	if len(w.buf) > 0 {
		w.out.linef("%s%s", w.prefix, w.buf)
		w.buf = nil
	}
}
