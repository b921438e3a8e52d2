package upgrade

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/batonhq/baton/procs"
)

// Start runs the upgrade: preflight, spawn, drain, verify and, with
// Options.Commit, commit. Without Commit it stops in Drained with both
// masters alive. A failure after the spawn rolls back unless
// Options.NoAutoRollback (error wrapping ErrRolledBack, or ErrInconsistent
// when the rollback failed too).
func (m *Machine) Start(ctx context.Context) (*Report, error) {
	return m.command(ctx, "start", m.startVerb)
}

// startVerb is Start's body, run by command: the steps in order, and a
// rollback (fail) when one after the spawn fails.
func (m *Machine) startVerb(ctx context.Context, v Verdict) error {
	endPreflight := m.span("preflight")
	old, err := m.preflight(ctx, v)
	endPreflight()
	if err != nil {
		if interrupted(ctx) {
			err = fmt.Errorf("%w before anything was signalled: %w", ErrInterrupted, err)
		}
		return err
	}
	// From here the waits look only at descriptors for the old master's
	// listeners, and wake on the processes the old master starts; the
	// report's last look reads everything again.
	m.pinListeners(old.Listeners)
	defer m.pinListeners(nil)
	defer m.watchTree(old.ID.PID)()
	want := m.opts.Workers
	if want == 0 {
		want = max(len(old.Workers), 1)
	}
	// A master that a committed upgrade started is one nginx counts as
	// daemonized (ngx_inherited), whatever its environment shows now: its
	// title has overwritten /proc/PID/environ, NGINX= included.
	// A rollback to it keeps that fact.
	byUpgrade := m.j != nil && (m.j.State == Committed && m.j.New == old.ID ||
		m.j.State == RolledBack && m.j.Old == old.ID && m.j.OldByUpgrade)
	m.j = &Journal{Flavor: m.flavor.Name, Pidfile: m.opts.Pidfile, Started: m.sys.Now(), Old: old.ID, OldByUpgrade: byUpgrade, OldWorkers: len(old.Workers), Workers: want}
	if interrupted(ctx) {
		return fmt.Errorf("%w before anything was signalled", ErrInterrupted)
	}
	// The journal says Spawning before USR2 is sent, so that a crash right
	// after it leaves a record to resume from.
	if err := m.record(EvSpawn, 0, fmt.Sprintf("%s to %s", SignalName(m.flavor.Upgrade), old.ID)); err != nil {
		return fmt.Errorf("%w: %w", ErrBadInput, err)
	}
	before := stampOf(m.opts.Pidfile)
	if err := m.signal(old.ID, m.flavor.Upgrade); err != nil {
		m.mustRecord(EvBreak, err.Error())
		return fmt.Errorf("%w: %s to the old master: %w", ErrInconsistent, SignalName(m.flavor.Upgrade), err)
	}
	m.step("spawn", "sent %s to master %d; waiting up to %v for the new master", SignalName(m.flavor.Upgrade), old.ID.PID, m.opts.SpawnTimeout)
	nu, err := m.spawn(ctx, old, want, before)
	if err != nil {
		return m.fail(ctx, "spawn", err)
	}
	if err := m.drain(ctx, old); err != nil {
		return m.fail(ctx, "drain", err)
	}
	if err := m.verify(ctx, nu); err != nil {
		return m.fail(ctx, "verify", err)
	}
	if !m.opts.Commit {
		m.step("done", "new master %d serves, old master %d is parked; 'baton upgrade commit' or 'baton upgrade rollback'", nu.ID.PID, old.ID.PID)
		return nil
	}
	return m.commit(ctx)
}

// preflight checks everything before any signal: it returns the master to
// upgrade or an error wrapping ErrNotRunning, ErrUpgradePending or
// ErrPreflight.
func (m *Machine) preflight(ctx context.Context, v Verdict) (*MasterObs, error) {
	// The master renames its pid file there (nginx, unicorn, baton) or
	// its successor writes it (gunicorn): a file there that baton refuses
	// to read — planted by another user, or garbled — must not be
	// clobbered or believed.
	if p, _ := m.readPid(m.flavor.AsidePath(m.opts.Pidfile)); p.Exists && p.Err != "" {
		m.rep.Advice = "remove " + p.Path + " if no master runs from it"
		return nil, fmt.Errorf("%w: %s: %s", ErrBadInput, p.Path, p.Err)
	}
	old, err := m.serving(v)
	if err != nil {
		return nil, err
	}
	bin, problems := m.execProblems(old)
	if len(old.Listeners) == 0 {
		problems = append(problems, fmt.Sprintf("master %d holds no listening socket to hand over", old.ID.PID))
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%w: %s", ErrPreflight, strings.Join(problems, "; "))
	}
	if m.opts.Preflight != "" {
		if err := m.runPreflight(ctx); err != nil {
			return nil, err
		}
	}
	if err := m.checkAll(ctx); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrPreflight, err)
	}
	m.step("preflight", "%s master %d (%s, %d workers, %d listeners)%s", m.flavor.Name, old.ID.PID, bin, len(old.Workers), len(old.Listeners), checksSuffix(len(m.opts.Checks)))
	return old, nil
}

// serving returns the one master serving in a settled state: an error
// wrapping ErrNotRunning when there is none, ErrUpgradePending when an
// upgrade is under way.
func (m *Machine) serving(v Verdict) (*MasterObs, error) {
	switch {
	case v.State == Down:
		return nil, fmt.Errorf("%w: %s%s", ErrNotRunning, m.opts.Pidfile, prefixed(": ", strings.Join(v.Findings, "; ")))
	case !v.State.Settled():
		m.rep.Advice = v.Advice
		if m.rep.Advice == "" {
			m.rep.Advice = "finish it with 'baton upgrade commit' or 'baton upgrade rollback'"
		}
		return nil, fmt.Errorf("%w: state %s%s (%s ignores %s while one is)", ErrUpgradePending, v.State, prefixed(": ", strings.Join(v.Findings, "; ")), m.flavor.Name, SignalName(m.flavor.Upgrade))
	}
	cur := v.Old
	if cur == nil {
		cur = v.New
	}
	if cur == nil {
		return nil, fmt.Errorf("%w: no master", ErrNotRunning)
	}
	return cur, nil
}

// runPreflight runs the preflight command within Options.PreflightTimeout:
// an error wraps ErrPreflight, and ErrTimeout when the timeout ended it.
func (m *Machine) runPreflight(ctx context.Context) error {
	pctx, cancel := context.WithTimeout(ctx, m.opts.PreflightTimeout)
	defer cancel()
	out, err := m.sys.Run(pctx, m.opts.Preflight)
	if err != nil && ctx.Err() == nil && errors.Is(pctx.Err(), context.DeadlineExceeded) {
		// One line: what a hung command printed so far explains less than
		// which command it was and which option bounds it.
		return fmt.Errorf("%w: %w", ErrPreflight, &timeoutError{after: m.opts.PreflightTimeout,
			reason: fmt.Sprintf("command %q stopped with its process group (--preflight-timeout)", m.opts.Preflight)})
	}
	if err != nil {
		return fmt.Errorf("%w: %w%s", ErrPreflight, err, prefixed(": ", strings.TrimSpace(string(out))))
	}
	m.step("preflight", "%q passed", m.opts.Preflight)
	return nil
}

// execProblems checks what Upgrade will exec: the binary (returned, for the
// report) and the master's working directory.
func (m *Machine) execProblems(old *MasterObs) (bin string, problems []string) {
	bin = old.Binary
	if m.flavor.ExecPath != nil {
		if p := m.flavor.ExecPath(old.Cmdline); p != "" {
			bin = p
		}
	}
	if bin != "" && !filepath.IsAbs(bin) {
		if strings.Contains(bin, "/") {
			bin = filepath.Join(old.Dir, bin)
		} else {
			problems = append(problems, fmt.Sprintf("the master will exec %q, a bare name it cannot find again (start it by absolute path)", bin))
			bin = ""
		}
	}
	if bin != "" {
		if fi, err := os.Stat(bin); err != nil {
			problems = append(problems, fmt.Sprintf("the binary the master will exec: %v", err))
		} else if !fi.Mode().IsRegular() || fi.Mode()&0o111 == 0 {
			problems = append(problems, fmt.Sprintf("the binary the master will exec, %s, is not an executable file", bin))
		}
	}
	if old.Dir == "" {
		problems = append(problems, "the master's working directory is unknown")
	} else if fi, err := os.Stat(old.Dir); err != nil || !fi.IsDir() {
		problems = append(problems, fmt.Sprintf("the master's working directory %s is gone", old.Dir))
	}
	return bin, problems
}

func checksSuffix(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(", %d checks pass", n)
}

// fail handles a failed check after the spawn: automatic rollback, or stop
// where things are.
func (m *Machine) fail(ctx context.Context, step string, cause error) error {
	m.pinListeners(nil) // a rollback reads everything
	m.step(step, "failed: %v", cause)
	if m.opts.NoAutoRollback {
		m.mustRecord(EvBreak, fmt.Sprintf("%s: %v", step, cause))
		m.rep.Advice = "automatic rollback is off: both masters are left as they are; 'baton upgrade rollback' or 'baton upgrade commit'"
		return fmt.Errorf("%w: %s: %w", ErrInconsistent, step, cause)
	}
	why, aborted := fmt.Sprintf("%s failed: %v", step, cause), interrupted(ctx)
	if aborted {
		why = "interrupted during " + step
		m.step("abort", "interrupted: rolling back (interrupt again to stop at once)")
	} else {
		m.step("rollback", "automatic rollback after %s failed", step)
	}
	ctx, cancel := m.detached(ctx)
	defer cancel()
	if m.j.New.PID == 0 {
		// The upgrade signal may not have been acted on yet: wait for the
		// new master it starts, so that it is stopped, not left behind.
		if _, v := m.look(ctx); v.New != nil {
			m.j.New = v.New.ID
		}
	}
	if err := m.rollback(ctx, why); err != nil {
		if m.hardStopped() {
			m.rep.Advice = m.stoppedAdvice("rollback")
		}
		return fmt.Errorf("%w: %s, and the rollback failed: %w", ErrInconsistent, why, err)
	}
	if aborted {
		return fmt.Errorf("%w: %s", ErrRolledBack, why)
	}
	return fmt.Errorf("%w: %s: %w", ErrRolledBack, step, cause)
}

// fileStamp is a file's inode and status change time (a rename updates
// it): the same inode with a new change time was renamed away and back.
type fileStamp struct {
	ino   uint64
	ctime time.Time
}

func stampOf(path string) fileStamp {
	var st syscall.Stat_t
	if err := syscall.Lstat(path, &st); err != nil {
		return fileStamp{}
	}
	return fileStamp{ino: st.Ino, ctime: time.Unix(st.Ctim.Unix())}
}

// spawn waits for the new master to be up, verified and healthy. before is
// the pid file's stamp before the upgrade signal (zero: unknown).
func (m *Machine) spawn(ctx context.Context, old *MasterObs, want int, before fileStamp) (*MasterObs, error) {
	defer m.span("spawn")()
	w := &spawnWait{m: m, old: old, want: want, before: before, deadline: m.sys.Now().Add(m.opts.SpawnTimeout)}
	err := waitFor(ctx, m.opts.SpawnTimeout, m.wake, func() (bool, string, error) {
		return w.probe(ctx, m.observe())
	})
	if err != nil {
		return nil, err
	}
	nu := w.nu
	m.j.New = nu.ID
	m.mustRecord(EvSpawned, fmt.Sprintf("new master %s", nu.ID))
	m.step("spawn", "new master %d: parent %d, %d workers, %d listeners inherited%s", nu.ID.PID, old.ID.PID, len(nu.Workers), len(old.Listeners), checksSuffix(len(m.opts.Checks)))
	return nu, nil
}

// spawnWait is spawn's wait for the new master: what it waits for and what
// it has seen so far. probe is called once per look.
type spawnWait struct {
	m        *Machine
	old      *MasterObs
	want     int       // workers the new master must have
	before   fileStamp // the pid file before Upgrade (zero: unknown)
	deadline time.Time // bounds the checks
	// seen is the new master its pid file named last; cands are the new
	// masters seen as the old master's children, pinned by identity (a
	// title may change when it execs).
	seen  procs.Identity
	cands []procs.Identity
	nu    *MasterObs // the new master, once ready
	// backAt is when a look first saw the pid file back with the old
	// master (notAside); zero while it is not.
	backAt time.Time
}

// backConfirm is how long the pid file must stay back with the old master,
// with no new master below it, before the spawn takes the new master for
// dead: one look has shown the file's inode changed beside its unchanged
// name and no .oldbin yet, just before the rename came (nginx in
// TestUpgrade/nginx/cycles, the fake in TestOldMasterDoesNotRestorePidfile).
const backConfirm = 250 * time.Millisecond

// probe looks at one observation: done once the new master is ready (w.nu),
// a reason while it is not, an error when either master died or the new one
// is not the old one's child.
func (w *spawnWait) probe(ctx context.Context, o Observation) (done bool, reason string, err error) {
	oldObs, newObs := o.Aside, o.Main
	if w.m.flavor.AsideHoldsNew {
		oldObs, newObs = o.Main, o.Aside
	}
	if oldObs.Master == nil && oldObs.PID == w.old.ID.PID {
		return false, "", fmt.Errorf("the old master %d died", w.old.ID.PID)
	}
	if err := w.pinChildren(o); err != nil {
		return false, "", err
	}
	if om := oldObs.Master; om == nil || om.ID != w.old.ID {
		return w.notAside(o)
	}
	newPath := w.m.flavor.NewPath(w.m.opts.Pidfile)
	if newObs.PID == w.old.ID.PID {
		// Read between the rename and the new master's write.
		return false, fmt.Sprintf("%s still names the old master", newPath), nil
	}
	nm := newObs.Master
	if w.seen.PID != 0 && (nm == nil || nm.ID != w.seen) && !w.m.runs(w.seen) {
		return false, "", fmt.Errorf("the new master %d died", w.seen.PID)
	}
	if nm == nil {
		if newObs.Err != "" {
			return false, fmt.Sprintf("%s: %s", newPath, newObs.Err), nil
		}
		return false, fmt.Sprintf("no new master in %s yet%s", newPath, w.ignoredHint()), nil
	}
	if nm.PPID != w.old.ID.PID {
		return false, "", fmt.Errorf("%s names pid %d, whose parent is %d, not the old master %d", newPath, nm.ID.PID, nm.PPID, w.old.ID.PID)
	}
	if w.seen != nm.ID {
		w.seen = nm.ID
		w.m.pinNew(nm.ID)
	}
	return w.ready(ctx, nm)
}

// pinChildren pins the old master's child masters as candidates (the first
// goes into the journal at once, so that a rollback after a crash knows
// whom to stop before the pid file says) and fails when every candidate is
// gone.
func (w *spawnWait) pinChildren(o Observation) error {
	for _, p := range []PidObs{o.Main, o.Aside} {
		if p.Master == nil || p.Master.ID != w.old.ID {
			continue
		}
		for _, pid := range p.Master.ChildMasters {
			if st, err := w.m.sys.Info(pid); err == nil && !st.Zombie() && !slices.Contains(w.cands, st.Identity()) {
				w.cands = append(w.cands, st.Identity())
				if w.m.j.New.PID == 0 {
					w.m.pinNew(st.Identity())
				}
			}
		}
		if len(p.Master.ChildMasters) == 0 && len(w.cands) > 0 && !w.m.anyAlive(w.cands) {
			return fmt.Errorf("the new master died: master %d has no new master any more", w.old.ID.PID)
		}
	}
	return nil
}

// notAside is the probe while the old master's pid file does not name it
// (yet): not renamed, renamed and back, or the old master gone.
func (w *spawnWait) notAside(o Observation) (bool, string, error) {
	m, pidfile := w.m, w.m.opts.Pidfile
	oldPath := m.flavor.OldPath(pidfile)
	if o.Main.PID == w.old.ID.PID && !m.flavor.AsideHoldsNew {
		if now := stampOf(pidfile); w.before.ino != 0 && now.ino == w.before.ino && !now.ctime.Equal(w.before.ctime) && stampOf(oldPath).ino != now.ino {
			// Renamed to .oldbin and back: a new master came and went
			// between two looks. (Not while .oldbin is the same inode: a
			// master that renames by link(2) and unlink(2), as package
			// pidfile does, shows both names at once.) Only once it
			// holds for backConfirm with no new master below the old one:
			// a single look has been wrong.
			at := w.m.sys.Now()
			if w.backAt.IsZero() {
				w.backAt = at
			}
			if at.Sub(w.backAt) >= backConfirm && !hasChildMaster(o, w.old.ID) {
				return false, "", fmt.Errorf("the new master died: master %d took %s back", w.old.ID.PID, pidfile)
			}
			return false, fmt.Sprintf("%s names the old master again; confirming", pidfile), nil
		}
		w.backAt = time.Time{}
		return false, fmt.Sprintf("%s still names the old master: %s not renamed yet%s", pidfile, oldPath, w.ignoredHint()), nil
	}
	if !m.runs(w.old.ID) {
		return false, "", fmt.Errorf("the old master %s died", w.old.ID)
	}
	return false, fmt.Sprintf("%s does not name the old master %d", oldPath, w.old.ID.PID), nil
}

// hasChildMaster reports whether a look saw the master id with a child
// master (a new master still running below it).
func hasChildMaster(o Observation, id procs.Identity) bool {
	for _, p := range []PidObs{o.Main, o.Aside} {
		if p.Master != nil && p.Master.ID == id && len(p.Master.ChildMasters) > 0 {
			return true
		}
	}
	return false
}

// ready is the probe once the new master's pid file names it: its workers,
// the old master's listeners, its status, then the checks.
func (w *spawnWait) ready(ctx context.Context, nm *MasterObs) (bool, string, error) {
	w.m.pinNewGeneration(nm.WorkerIDs, false)
	if len(nm.Workers) < w.want {
		return false, fmt.Sprintf("new master %d has %d of %d workers", nm.ID.PID, len(nm.Workers), w.want), nil
	}
	if miss := missingListeners(w.old.Listeners, nm.Listeners); len(miss) > 0 {
		return false, fmt.Sprintf("new master %d does not hold the old master's listener %s %s (inode %d)", nm.ID.PID, miss[0].Network, miss[0].Addr, miss[0].Inode), nil
	}
	if w.m.flavor.StatusFile && (nm.Status == nil || !nm.Status.Ready) {
		return false, fmt.Sprintf("new master %d's status does not say ready", nm.ID.PID), nil
	}
	cctx, cancel := context.WithDeadline(ctx, w.deadline)
	defer cancel()
	if err := w.m.checkAll(cctx); err != nil {
		return false, err.Error(), nil
	}
	w.nu = nm
	return true, "", nil
}

// ignoredHint says, in a reason, why the flavor may have ignored Upgrade.
func (w *spawnWait) ignoredHint() string {
	if w.m.flavor.UpgradeIgnored == "" {
		return ""
	}
	return " (" + w.m.flavor.UpgradeIgnored + ")"
}

// drain stops the old master's workers.
func (m *Machine) drain(ctx context.Context, old *MasterObs) error {
	defer m.span("drain")()
	fl := m.flavor
	// Last look before the old workers go: a new master that died (or is a
	// zombie not yet reaped) must not be drained for. nginx treats a HUP
	// after WINCH differently once it has reaped its new binary: it then
	// re-reads the configuration on disk, which may be the new release's,
	// instead of just starting its workers again.
	if !m.runs(m.j.New) {
		return fmt.Errorf("the new master %d died before the drain", m.j.New.PID)
	}
	// The workers told to drain, pinned: a rollback tells them from new ones.
	m.j.DrainedWorkers = m.workerIDs(old.Workers)
	m.j.DrainedTo = 0
	if err := m.record(EvDrain, 0, fmt.Sprintf("%s to %s", SignalName(fl.Drain), old.ID)); err != nil {
		m.warn("%v", err)
	}
	if err := m.signal(old.ID, fl.Drain); err != nil {
		return fmt.Errorf("%s to the old master %d: %w", SignalName(fl.Drain), old.ID.PID, err)
	}
	if why := m.drainIgnored(ctx, old, m.j.DrainedWorkers); why != "" {
		m.warn("%s", why)
		m.j.DrainedTo = len(old.Workers)
		m.mustRecord(EvDrained, "drain ignored: "+why)
		return nil
	}
	floor := fl.Floor(m.sys.Facts(old.ID.PID))
	last, err := m.awaitDrain(ctx, old, m.j.DrainedWorkers, floor)
	if err != nil {
		// After a timeout the ones that did not go are there to stay; after
		// anything else they are on their way out, down to the floor.
		m.j.DrainedTo = floor
		if errors.Is(err, ErrTimeout) {
			m.j.DrainedTo = last
		}
		return err
	}
	if floor > 0 && last > 0 {
		m.warn("%s keeps %d old worker(s) when not daemonized (TTOU stops there); they serve beside the new ones until commit", fl.Name, last)
	}
	m.j.DrainedTo = last
	m.mustRecord(EvDrained, fmt.Sprintf("%d old workers left", last))
	m.step("drain", "old master %d is parked with its listeners", old.ID.PID)
	return nil
}

// awaitDrain waits until the old master's workers (drained, pinned) are
// gone, or hold still at floor, sending DrainStep one worker at a time
// where the flavor has one. It returns the last count seen.
func (m *Machine) awaitDrain(ctx context.Context, old *MasterObs, drained []procs.Identity, floor int) (int, error) {
	fl := m.flavor
	sent := SignalName(fl.Drain)
	if fl.DrainStep != 0 {
		sent += fmt.Sprintf(", then %s one worker at a time", SignalName(fl.DrainStep))
	}
	// Each worker's exit is an event (pidfd); the count is re-read on each
	// one, with polling as the fallback for workers that appear late.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wake := m.wakeOnExit(wctx, drained)
	m.step("drain", "sent %s to master %d; %d workers to stop within %v", sent, old.ID.PID, len(old.Workers), m.opts.DrainTimeout)
	last := len(old.Workers)
	step := nudger{now: m.sys.Now}
	changed := m.sys.Now()
	err := waitFor(ctx, m.opts.DrainTimeout, wake, func() (bool, string, error) {
		st, ok := m.running(old.ID)
		if !ok {
			return false, "", fmt.Errorf("the old master %d died while draining", old.ID.PID)
		}
		if !m.runs(m.j.New) {
			return false, "", fmt.Errorf("the new master %d died while draining", m.j.New.PID)
		}
		om := m.master(st, []int{m.j.New.PID})
		n := len(om.Workers)
		if n != last {
			m.step("drain", "%d old workers left", n)
			last, changed = n, m.sys.Now()
		}
		// Zero is done. Above a flavor's floor, stop once the count holds
		// still: Drain may have been ignored and DrainStep goes no lower.
		if n == 0 || n <= floor && m.sys.Now().Sub(changed) >= nudgeEvery {
			return true, "", nil
		}
		if fl.DrainStep != 0 {
			// Sent whether or not Drain was honoured (a no-op at zero for
			// unicorn, at one for gunicorn), one at a time.
			if err := step.nudge(n, func() error { return m.signal(old.ID, fl.DrainStep) }); err != nil {
				return false, "", fmt.Errorf("%s to the old master %d: %w", SignalName(fl.DrainStep), old.ID.PID, err)
			}
		}
		return false, fmt.Sprintf("%d old workers left %v", n, om.Workers), nil
	})
	return last, err
}

// verify keeps checking the new generation for VerifyFor.
func (m *Machine) verify(ctx context.Context, nu *MasterObs) error {
	defer m.span("verify")()
	if m.opts.NoVerify {
		return nil
	}
	runs := 0
	err := waitFor(ctx, m.opts.VerifyFor, nil, func() (bool, string, error) {
		if !m.runs(nu.ID) {
			return false, "", fmt.Errorf("the new master %d died", nu.ID.PID)
		}
		if err := m.checkAll(ctx); err != nil {
			return false, "", err
		}
		runs++
		return false, "verifying", nil
	})
	if err != nil && !errors.Is(err, ErrTimeout) {
		return err
	}
	o := m.observe()
	v := Classify(o)
	if v.New == nil || v.New.ID != nu.ID {
		return fmt.Errorf("after verify the state is %s: %s", v.State, strings.Join(v.Findings, "; "))
	}
	m.pinNewGeneration(v.New.WorkerIDs, false)
	m.step("verify", "new generation healthy for %v (%d check rounds)", m.opts.VerifyFor, runs)
	return nil
}
