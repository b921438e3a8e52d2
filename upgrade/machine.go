package upgrade

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/batonhq/baton/pidfile"
	"github.com/batonhq/baton/procs"
)

// Options configures a Machine. Zero durations take the documented defaults.
type Options struct {
	// Pidfile is the master's pid file. Required.
	Pidfile string
	// Flavor is "", "auto" (detect from the master's command line) or the
	// name of a row of Flavors.
	Flavor string
	// Checks must pass before the upgrade, for the new generation and after
	// commit or rollback.
	Checks []Check
	// Preflight is a shell command that must exit 0 before anything is
	// signalled (e.g. "nginx -t"). Empty means none. It runs with sh -c in
	// a process group of its own, stopped whole when it ends or times out,
	// without NOTIFY_SOCKET, WATCHDOG_*, LISTEN_* and BATON_* in its
	// environment (as exec: checks do).
	Preflight string
	// PreflightTimeout bounds the Preflight command (default
	// DefaultPreflightTimeout). At its end the command's whole process
	// group is stopped and Start refuses with ErrPreflight (wrapping
	// ErrTimeout): nothing is signalled and the lock is released.
	PreflightTimeout time.Duration
	// Workers is how many workers the new master must have; 0 means as many
	// as the old master had.
	Workers int
	// SpawnTimeout bounds the new master's start (default 30s), also the
	// return of the old master's workers on rollback.
	SpawnTimeout time.Duration
	// DrainTimeout bounds the exit of the old workers (default 30s).
	DrainTimeout time.Duration
	// VerifyFor is how long the checks must keep passing against the new
	// generation alone (default 2s). Negative is the same as NoVerify.
	VerifyFor time.Duration
	// NoVerify skips the verify period: Start is done, or commits, as soon
	// as the old workers are drained.
	NoVerify bool
	// StopTimeout is the grace period of each step of stopping a master:
	// graceful signal, then fast stop, then SIGKILL (default 10s).
	StopTimeout time.Duration
	// Commit makes Start go on to commit after verify.
	Commit bool
	// NoAutoRollback leaves both masters as they are when a check fails
	// after the spawn, instead of rolling back.
	NoAutoRollback bool
	// Reload is what Reload does: ReloadAuto (the zero value) decides by
	// whether the running binary was replaced on disk.
	Reload ReloadMode
	// Hard, when done, stops at once the work a cancelled context leaves
	// to finish (the rollback after an interrupt, a commit whose signal
	// was sent): the CLI cancels it at a second interrupt. Nil: never.
	Hard context.Context
	// Progress, when set, receives one Step per step, as it happens, from
	// the calling goroutine.
	Progress func(Step)
	// Span, when set, is called as each phase of a command begins (begin,
	// settle, preflight, spawn, drain, verify, commit, end) and around each
	// look at the processes (observe), round of checks (check) and write of
	// the journal (journal); the function it returns is called as the
	// phase ends. From the
	// calling goroutine; phases nest. For profiling (baton's --profile):
	// nil costs nothing.
	Span func(name string) (end func())
	// Sys replaces the real system (tests). Nil fields are real.
	Sys System
}

// DefaultPreflightTimeout bounds the Preflight command when
// Options.PreflightTimeout is zero.
const DefaultPreflightTimeout = 60 * time.Second

// Machine runs one command against one pid file. It is not safe for
// concurrent use; make one per command.
type Machine struct {
	opts   Options
	sys    System
	flavor Flavor
	j      *Journal
	lock   *Lock
	t0     time.Time
	rep    *Report
	wake   <-chan struct{}
	// was is the state the journal recorded before settle reconciled it.
	was State
	// known are the old master's listeners by inode, pinned by Start's
	// preflight: while set, looks read only descriptors (see listeners).
	known map[uint64]procs.Listener
}

// New validates opts. Errors wrap ErrBadInput.
func New(opts Options) (*Machine, error) {
	if opts.Pidfile == "" {
		return nil, fmt.Errorf("%w: no pid file given", ErrBadInput)
	}
	abs, err := filepath.Abs(opts.Pidfile)
	if err != nil {
		return nil, fmt.Errorf("%w: pid file: %w", ErrBadInput, err)
	}
	opts.Pidfile = abs
	if opts.Flavor != "" && opts.Flavor != "auto" {
		if _, err := LookupFlavor(opts.Flavor); err != nil {
			return nil, err
		}
	}
	if opts.Workers < 0 {
		return nil, fmt.Errorf("%w: --workers %d is negative", ErrBadInput, opts.Workers)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if opts.VerifyFor < 0 {
		opts.NoVerify = true
	}
	def(&opts.SpawnTimeout, 30*time.Second)
	def(&opts.DrainTimeout, 30*time.Second)
	def(&opts.VerifyFor, 2*time.Second)
	def(&opts.StopTimeout, 10*time.Second)
	def(&opts.PreflightTimeout, DefaultPreflightTimeout)
	for _, d := range []time.Duration{opts.SpawnTimeout, opts.DrainTimeout, opts.StopTimeout, opts.PreflightTimeout} {
		if d < 0 {
			return nil, fmt.Errorf("%w: negative timeout %v", ErrBadInput, d)
		}
	}
	m := &Machine{opts: opts, sys: opts.Sys}
	m.sys.fill()
	return m, nil
}

func (m *Machine) step(name, format string, args ...any) {
	s := Step{Name: name, Msg: fmt.Sprintf(format, args...), Elapsed: m.sys.Now().Sub(m.t0)}
	m.rep.Steps = append(m.rep.Steps, s)
	if m.opts.Progress != nil {
		m.opts.Progress(s)
	}
}

// span marks a phase for Options.Span; call the result at its end.
func (m *Machine) span(name string) func() {
	if m.opts.Span == nil {
		return func() {}
	}
	return m.opts.Span(name)
}

func (m *Machine) warn(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	m.rep.Warnings = append(m.rep.Warnings, msg)
	m.step("warning", "%s", msg)
}

// begin starts a command: report, journal, flavor, optionally the lock.
func (m *Machine) begin(command string, lock bool) error {
	m.t0 = m.sys.Now()
	m.rep = &Report{Command: command, Pidfile: m.opts.Pidfile, Steps: []Step{}}
	// access(2), not open(2): opening a FIFO planted at the path blocks.
	if err := unix.Faccessat(unix.AT_FDCWD, m.opts.Pidfile, unix.R_OK, unix.AT_EACCESS); denied(err) {
		return permission(err, "read the pid file "+m.opts.Pidfile, m.opts.Pidfile)
	}
	if _, err := os.Stat(filepath.Dir(m.opts.Pidfile)); err != nil {
		return fmt.Errorf("%w: pid file directory: %w", ErrBadInput, err)
	}
	j, err := readJournal(JournalPath(m.opts.Pidfile))
	if err != nil {
		if lock && unsafeFile(err) {
			// Another user could have planted it: it would tell baton whom
			// to signal. Refused before anything happens.
			return err
		}
		m.rep.Findings = append(m.rep.Findings, fmt.Sprintf("journal unreadable, ignored: %v", err))
	}
	m.j = j
	if err := m.detect(); err != nil {
		m.rep.State = Down
		if pid := lockHolderIfLocked(LockPath(m.opts.Pidfile)); lock && pid != 0 {
			// Mid-way through another orchestrator's steps: it is busy.
			m.rep.LockHolder = pid
			return &LockError{Path: LockPath(m.opts.Pidfile), PID: max(pid, 0)}
		}
		return err
	}
	m.rep.Flavor = m.flavor.Name
	if lock {
		if err := m.mayAct(); err != nil {
			return err
		}
		l, err := AcquireLock(LockPath(m.opts.Pidfile))
		if err != nil {
			if denied(err) {
				return permission(err, "take the lock "+LockPath(m.opts.Pidfile), LockPath(m.opts.Pidfile))
			}
			var le *LockError
			if errors.As(err, &le) {
				m.rep.LockHolder = le.PID
			}
			return err
		}
		m.lock = l
		// Every writer of the journal holds the lock: a temporary file of
		// it now was left by an orchestrator killed mid-write.
		if n := pidfile.RemoveTemps(JournalPath(m.opts.Pidfile)); n > 0 {
			m.step("journal", "removed %d temporary file(s) of %s that a killed orchestrator left", n, JournalPath(m.opts.Pidfile))
		}
		// Read again under the lock: the previous holder may have written
		// it since.
		if m.j, err = readJournal(JournalPath(m.opts.Pidfile)); err != nil {
			m.j = nil
		}
	} else if pid := lockHolderIfLocked(LockPath(m.opts.Pidfile)); pid != 0 {
		m.rep.LockHolder = pid
	}
	return nil
}

// command runs one verb that changes things: begin (report, journal,
// flavor, the lock), watch the pid file's directory, settle (observe,
// classify, reconcile the journal), then body with the verdict; end fills
// the report and releases the lock on every path, a panic included.
func (m *Machine) command(ctx context.Context, name string, body func(context.Context, Verdict) error) (*Report, error) {
	endBegin := m.span("begin")
	err := m.begin(name, true)
	endBegin()
	if err != nil {
		return m.end(err)
	}
	defer m.watch()()
	defer m.lock.Release() // a no-op once end released it
	m.was = m.journalState()
	endSettle := m.span("settle")
	_, v := m.settle(ctx)
	endSettle()
	return m.end(body(ctx, v))
}

// end fills the report with the final observation and releases the lock.
func (m *Machine) end(err error) (*Report, error) {
	defer m.span("end")()
	if m.flavor.Name != "" {
		o, v := m.look(context.Background())
		m.rep.State = v.State
		m.rep.Old, m.rep.New = v.Old, v.New
		m.rep.Files = []PidObs{o.Main, o.Aside}
		for _, f := range v.Findings {
			if !slices.Contains(m.rep.Findings, f) {
				m.rep.Findings = append(m.rep.Findings, f)
			}
		}
		if m.rep.Advice == "" {
			m.rep.Advice = v.Advice
		}
	}
	m.rep.Journal = m.j
	m.rep.Elapsed = m.sys.Now().Sub(m.t0)
	if err != nil {
		m.rep.Error = err.Error()
		if m.rep.Advice == "" && errors.Is(err, ErrInconsistent) {
			m.rep.Advice = "run 'baton upgrade status --pidfile " + m.opts.Pidfile + "' and then 'baton upgrade rollback' or 'baton upgrade commit'"
		}
	}
	if m.lock != nil {
		_ = m.lock.Release()
		m.lock = nil
	}
	return m.rep, err
}

// settle observes, classifies and reconciles the journal with what is seen.
// The reconciliation is made in memory only: the journal file is written
// by the next step the verb takes, so that a refused invocation never
// rewrites it.
func (m *Machine) settle(ctx context.Context) (Observation, Verdict) {
	o, v := m.look(ctx)
	m.rep.Findings = append(m.rep.Findings, v.Findings...)
	if m.j != nil && m.j.State != v.State && v.State != Down {
		note := strings.Join(v.Findings, "; ")
		m.step("reconcile", "journal said %s, found %s%s", m.j.State, v.State, prefixed("; ", note))
		if v.Old != nil {
			m.j.Old = v.Old.ID
		}
		if v.New != nil {
			m.j.New = v.New.ID
		}
		if err := m.j.record(m.sys.Now(), os.Getpid(), EvReconcile, v.State, note); err != nil {
			m.warn("%v", err)
		}
	}
	return o, v
}

// look observes and classifies, and waits out what settles by itself in a
// moment, so that a later look does not contradict this one: an upgrade
// signal the old master has not acted on yet (Verdict.Pending, at most
// UpgradePending after it was recorded), and a new master the journal
// names that runs while no pid file names it (one is being rewritten:
// gunicorn promotes <pidfile>.2 by unlinking it, then creating <pidfile>;
// at most pidfileSettle). Pid file changes wake the wait.
func (m *Machine) look(ctx context.Context) (Observation, Verdict) {
	o := m.observe()
	v := Classify(o)
	unnamed := func(v Verdict) bool {
		return m.j != nil && m.j.New.PID > 0 && (v.New == nil || v.New.ID != m.j.New) && m.runs(m.j.New)
	}
	var bound time.Duration
	switch {
	case v.Pending:
		bound = UpgradePending
	case unnamed(v):
		bound = pidfileSettle
	default:
		return o, v
	}
	stop := func() {}
	if m.wake == nil {
		stop = m.watch()
	}
	defer stop()
	_ = waitFor(ctx, bound, m.wake, func() (bool, string, error) {
		o = m.observe()
		v = Classify(o)
		return !v.Pending && !unnamed(v), "pid files settle", nil
	})
	return o, v
}

// journalState is the state the journal recorded, Idle when there is none.
func (m *Machine) journalState() State {
	if m.j == nil {
		return Idle
	}
	return m.j.State
}

// finished settles a verb whose work a killed orchestrator had begun and
// the masters completed: the journal, reconciled by settle, is written and
// the checks must pass.
func (m *Machine) finished(ctx context.Context, what string) error {
	m.step(m.rep.Command, "already done: %s", what)
	if err := m.saveJournal(); err != nil {
		m.warn("journal: %v", err)
	}
	if err := m.checkAll(ctx); err != nil {
		return fmt.Errorf("%w: %s, but the checks fail: %w", ErrInconsistent, what, err)
	}
	return nil
}

// unsafeFile reports whether err refuses a file another user could have
// written (as opposed to one that is missing or merely garbled by a crash).
func unsafeFile(err error) bool {
	return errors.Is(err, pidfile.ErrInsecure) || errors.Is(err, pidfile.ErrSymlink)
}

// pidfileSettle bounds settle's wait for a pid file being rewritten.
const pidfileSettle = time.Second

func prefixed(p, s string) string {
	if s == "" {
		return ""
	}
	return p + s
}

// checkAll runs the checks once, recording the results in the report.
func (m *Machine) checkAll(ctx context.Context) error {
	if len(m.opts.Checks) > 0 {
		defer m.span("check")()
	}
	m.rep.Health = m.rep.Health[:0]
	var first error
	for _, c := range m.opts.Checks {
		err := c.run(ctx)
		h := Health{Check: c.Spec, OK: err == nil}
		if err != nil {
			h.Error = err.Error()
			if first == nil {
				first = err
			}
		}
		m.rep.Health = append(m.rep.Health, h)
	}
	return first
}

// Status observes and reports without changing anything and without the
// lock. Like the verbs, it waits out what settles by itself in a moment
// (see look), bounded by UpgradePending.
func (m *Machine) Status(ctx context.Context) (*Report, error) {
	if err := m.begin("status", false); err != nil {
		return m.end(err)
	}
	_, v := m.look(ctx)
	m.rep.Advice = v.Advice
	if err := m.mayInspect(v.Old, v.New); err != nil {
		return m.end(err)
	}
	for _, mo := range []*MasterObs{v.Old, v.New} {
		if mo != nil && mo.BinaryGone {
			m.rep.Findings = append(m.rep.Findings, fmt.Sprintf("the binary of master %d, %s, was replaced on disk: an upgrade is due", mo.ID.PID, mo.Binary))
		}
	}
	if len(m.opts.Checks) > 0 {
		_ = m.checkAll(ctx)
	}
	return m.end(nil)
}

// watch starts waking waits on changes in the pid file's directory.
func (m *Machine) watch() func() {
	ch, stop := m.sys.Watch(filepath.Dir(m.opts.Pidfile))
	m.wake = ch
	return stop
}

// watchTree also wakes waits on the forks, execs and exits of pid and the
// processes it starts (the new master, its workers), where the kernel's
// process events are available: a master forking its workers changes no
// file. The returned function stops it and restores the wake it had.
func (m *Machine) watchTree(pid int) func() {
	ch, stop := m.sys.WatchProcs([]int{pid})
	if ch == nil {
		stop()
		return func() {}
	}
	prev := m.wake
	merged, stopMerge := mergeWakes(prev, ch)
	m.wake = merged
	return func() {
		stopMerge()
		stop()
		m.wake = prev
	}
}
