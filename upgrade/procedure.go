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
	if err := m.begin("start", true); err != nil {
		return m.end(err)
	}
	defer m.watch()()
	old, err := m.preflight(ctx)
	if err != nil {
		if interrupted(ctx) {
			err = fmt.Errorf("%w before anything was signalled: %w", ErrInterrupted, err)
		}
		return m.end(err)
	}
	want := m.opts.Workers
	if want == 0 {
		want = max(len(old.Workers), 1)
	}
	// A master that a committed upgrade started is one nginx counts as
	// daemonized (ngx_inherited), whatever its environment shows now: its
	// title has overwritten /proc/PID/environ, NGINX= included.
	byUpgrade := m.j != nil && m.j.State == Committed && m.j.New == old.ID
	m.j = &Journal{Flavor: m.flavor.Name, Pidfile: m.opts.Pidfile, Started: m.sys.Now(), Old: old.ID, OldByUpgrade: byUpgrade, OldWorkers: len(old.Workers), Workers: want}
	if interrupted(ctx) {
		return m.end(fmt.Errorf("%w before anything was signalled", ErrInterrupted))
	}
	// The journal says Spawning before USR2 is sent, so that a crash right
	// after it leaves a record to resume from.
	if err := m.record(EvSpawn, 0, fmt.Sprintf("%s to %s", SignalName(m.flavor.Upgrade), old.ID)); err != nil {
		return m.end(fmt.Errorf("%w: %w", ErrBadInput, err))
	}
	before := stampOf(m.opts.Pidfile)
	if err := m.signal(old.ID, m.flavor.Upgrade); err != nil {
		m.mustRecord(EvBreak, err.Error())
		return m.end(fmt.Errorf("%w: %s to the old master: %w", ErrInconsistent, SignalName(m.flavor.Upgrade), err))
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
		return m.end(nil)
	}
	if err := m.commit(ctx); err != nil {
		return m.end(err)
	}
	return m.end(nil)
}

// preflight checks everything before any signal: it returns the master to
// upgrade or an error wrapping ErrNotRunning, ErrUpgradePending or
// ErrPreflight.
func (m *Machine) preflight(ctx context.Context) (*MasterObs, error) {
	_, v := m.settle(ctx)
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
	old := v.Old
	if old == nil {
		old = v.New
	}
	if old == nil {
		return nil, fmt.Errorf("%w: no master", ErrNotRunning)
	}
	var problems []string
	bin := old.Binary
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
	if len(old.Listeners) == 0 {
		problems = append(problems, fmt.Sprintf("master %d holds no listening socket to hand over", old.ID.PID))
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%w: %s", ErrPreflight, strings.Join(problems, "; "))
	}
	if m.opts.Preflight != "" {
		out, err := m.sys.Run(ctx, m.opts.Preflight)
		if err != nil {
			return nil, fmt.Errorf("%w: %w%s", ErrPreflight, err, prefixed(": ", strings.TrimSpace(string(out))))
		}
		m.step("preflight", "%q passed", m.opts.Preflight)
	}
	if err := m.checkAll(ctx); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrPreflight, err)
	}
	m.step("preflight", "%s master %d (%s, %d workers, %d listeners)%s", m.flavor.Name, old.ID.PID, bin, len(old.Workers), len(old.Listeners), checksSuffix(len(m.opts.Checks)))
	return old, nil
}

func closing(s string) string {
	if s == "" {
		return ""
	}
	return ")"
}

func checksSuffix(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(", %d checks pass", n)
}

// fail handles a failed check after the spawn: automatic rollback, or stop
// where things are.
func (m *Machine) fail(ctx context.Context, step string, cause error) (*Report, error) {
	m.step(step, "failed: %v", cause)
	if m.opts.NoAutoRollback {
		m.mustRecord(EvBreak, fmt.Sprintf("%s: %v", step, cause))
		m.rep.Advice = "automatic rollback is off: both masters are left as they are; 'baton upgrade rollback' or 'baton upgrade commit'"
		return m.end(fmt.Errorf("%w: %s: %w", ErrInconsistent, step, cause))
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
		return m.end(fmt.Errorf("%w: %s, and the rollback failed: %w", ErrInconsistent, why, err))
	}
	if aborted {
		return m.end(fmt.Errorf("%w: %s", ErrRolledBack, why))
	}
	return m.end(fmt.Errorf("%w: %s: %w", ErrRolledBack, step, cause))
}

// anyAlive reports whether one of ids still runs. Only a definite "gone"
// counts: /proc may be unreadable for a moment while a process execs.
func (m *Machine) anyAlive(ids []procs.Identity) bool {
	for _, id := range ids {
		p, err := m.sys.Open(id)
		if err != nil {
			if !gone(err) {
				return true
			}
			continue
		}
		alive := p.Alive()
		p.Close()
		if alive {
			return true
		}
	}
	return false
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
	var seen procs.Identity
	var nu *MasterObs
	var cands []procs.Identity // new masters seen as the old master's children
	deadline := m.sys.Now().Add(m.opts.SpawnTimeout)
	oldPath, newPath := m.flavor.OldPath(m.opts.Pidfile), m.flavor.NewPath(m.opts.Pidfile)
	err := waitFor(ctx, m.opts.SpawnTimeout, m.wake, func() (bool, string, error) {
		o := m.observe()
		oldObs, newObs := o.Aside, o.Main
		if m.flavor.AsideHoldsNew {
			oldObs, newObs = o.Main, o.Aside
		}
		om := oldObs.Master
		if om == nil && oldObs.PID == old.ID.PID {
			return false, "", fmt.Errorf("the old master %d died", old.ID.PID)
		}
		for _, p := range []PidObs{o.Main, o.Aside} {
			if p.Master == nil || p.Master.ID != old.ID {
				continue
			}
			for _, pid := range p.Master.ChildMasters {
				if st, err := m.sys.Info(pid); err == nil && !st.Zombie() && !slices.Contains(cands, st.Identity()) {
					cands = append(cands, st.Identity())
					if m.j.New.PID == 0 {
						// Recorded at once, so that a rollback after a crash
						// knows whom to stop before the pid file says.
						m.j.New = st.Identity()
						if err := WriteJournal(JournalPath(m.opts.Pidfile), m.j); err != nil {
							m.warn("journal: %v", err)
						}
					}
				}
			}
			if len(p.Master.ChildMasters) == 0 && len(cands) > 0 && !m.anyAlive(cands) {
				// A new master was seen (pinned by identity: its title may
				// change when it execs) and every one is gone.
				return false, "", fmt.Errorf("the new master died: master %d has no new master any more", old.ID.PID)
			}
		}
		if om == nil || om.ID != old.ID {
			if o.Main.PID == old.ID.PID && !m.flavor.AsideHoldsNew {
				if now := stampOf(m.opts.Pidfile); before.ino != 0 && now.ino == before.ino && !now.ctime.Equal(before.ctime) && stampOf(oldPath).ino != now.ino {
					// Renamed to .oldbin and back: a new master came and went
					// between two looks. (Not while .oldbin is the same
					// inode: a master that renames by link(2) and unlink(2),
					// as package pidfile does, shows both names at once.)
					return false, "", fmt.Errorf("the new master died: master %d took %s back", old.ID.PID, m.opts.Pidfile)
				}
				return false, fmt.Sprintf("%s still names the old master: %s not renamed yet%s", m.opts.Pidfile, oldPath, prefixed(" (", m.flavor.UpgradeIgnored)+closing(m.flavor.UpgradeIgnored)), nil
			}
			if st, err := m.sys.Info(old.ID.PID); err != nil || st.Identity() != old.ID || st.Zombie() {
				return false, "", fmt.Errorf("the old master %s died", old.ID)
			}
			return false, fmt.Sprintf("%s does not name the old master %d", oldPath, old.ID.PID), nil
		}
		if newObs.PID == old.ID.PID {
			// Read between the rename and the new master's write.
			return false, fmt.Sprintf("%s still names the old master", newPath), nil
		}
		nm := newObs.Master
		if seen.PID != 0 && (nm == nil || nm.ID != seen) {
			if st, err := m.sys.Info(seen.PID); err != nil || st.Identity() != seen || st.Zombie() {
				return false, "", fmt.Errorf("the new master %d died", seen.PID)
			}
		}
		if nm == nil {
			if newObs.Err != "" {
				return false, fmt.Sprintf("%s: %s", newPath, newObs.Err), nil
			}
			return false, fmt.Sprintf("no new master in %s yet%s", newPath, prefixed(" (", m.flavor.UpgradeIgnored)+closing(m.flavor.UpgradeIgnored)), nil
		}
		if nm.PPID != old.ID.PID {
			return false, "", fmt.Errorf("%s names pid %d, whose parent is %d, not the old master %d", newPath, nm.ID.PID, nm.PPID, old.ID.PID)
		}
		if seen != nm.ID {
			seen = nm.ID
			m.j.New = seen
			if err := WriteJournal(JournalPath(m.opts.Pidfile), m.j); err != nil {
				m.warn("journal: %v", err)
			}
		}
		if len(nm.Workers) < want {
			return false, fmt.Sprintf("new master %d has %d of %d workers", nm.ID.PID, len(nm.Workers), want), nil
		}
		if miss := missingListeners(old.Listeners, nm.Listeners); len(miss) > 0 {
			return false, fmt.Sprintf("new master %d does not hold the old master's listener %s %s (inode %d)", nm.ID.PID, miss[0].Network, miss[0].Addr, miss[0].Inode), nil
		}
		if m.flavor.StatusFile && (nm.Status == nil || !nm.Status.Ready) {
			return false, fmt.Sprintf("new master %d's status does not say ready", nm.ID.PID), nil
		}
		cctx, cancel := context.WithDeadline(ctx, deadline)
		defer cancel()
		if err := m.checkAll(cctx); err != nil {
			return false, err.Error(), nil
		}
		nu = nm
		return true, "", nil
	})
	if err != nil {
		return nil, err
	}
	m.j.New = nu.ID
	m.mustRecord(EvSpawned, fmt.Sprintf("new master %s", nu.ID))
	m.step("spawn", "new master %d: parent %d, %d workers, %d listeners inherited%s", nu.ID.PID, old.ID.PID, len(nu.Workers), len(old.Listeners), checksSuffix(len(m.opts.Checks)))
	return nu, nil
}

// drain stops the old master's workers.
func (m *Machine) drain(ctx context.Context, old *MasterObs) error {
	fl := m.flavor
	// Last look before the old workers go: a new master that died (or is a
	// zombie not yet reaped) must not be drained for. nginx treats a HUP
	// after WINCH differently once it has reaped its new binary: it then
	// re-reads the configuration on disk, which may be the new release's,
	// instead of just starting its workers again.
	if nst, err := m.sys.Info(m.j.New.PID); err != nil || nst.Identity() != m.j.New || nst.Zombie() {
		return fmt.Errorf("the new master %d died before the drain", m.j.New.PID)
	}
	// The workers told to drain, pinned: a rollback tells them from new ones.
	m.j.DrainedWorkers = m.workerIDs(old.Workers)
	m.j.DrainedTo = 0
	if err := m.record(EvDrain, 0, fmt.Sprintf("%s to %s", SignalName(fl.Drain), old.ID)); err != nil {
		m.warn("%v", err)
	}
	if err := m.signal(old.ID, fl.Drain); err != nil {
		return fmt.Errorf("drain: %w", err)
	}
	sent := SignalName(fl.Drain)
	if fl.DrainStep != 0 {
		sent += fmt.Sprintf(", then %s one worker at a time", SignalName(fl.DrainStep))
	}
	if why := m.drainIgnored(ctx, old, m.j.DrainedWorkers); why != "" {
		m.warn("%s", why)
		m.j.DrainedTo = len(old.Workers)
		m.mustRecord(EvDrained, "drain ignored: "+why)
		return nil
	}
	// Each worker's exit is an event (pidfd); the count is re-read on each
	// one, with polling as the fallback for workers that appear late.
	wake := make(chan struct{}, 1)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for _, id := range m.workerIDs(old.Workers) {
		p, err := m.sys.Open(id)
		if err != nil {
			continue
		}
		go func() {
			defer p.Close()
			if p.Wait(wctx) == nil {
				select {
				case wake <- struct{}{}:
				default:
				}
			}
		}()
	}
	floor := fl.Floor(m.sys.Facts(old.ID.PID))
	m.step("drain", "sent %s to master %d; %d workers to stop within %v", sent, old.ID.PID, len(old.Workers), m.opts.DrainTimeout)
	last := len(old.Workers)
	step := nudger{now: m.sys.Now}
	changed := m.sys.Now()
	err := waitFor(ctx, m.opts.DrainTimeout, wake, func() (bool, string, error) {
		st, err := m.sys.Info(old.ID.PID)
		if err != nil || st.Identity() != old.ID || st.Zombie() {
			return false, "", fmt.Errorf("the old master %d died while draining", old.ID.PID)
		}
		if nst, err := m.sys.Info(m.j.New.PID); err != nil || nst.Identity() != m.j.New || nst.Zombie() {
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
				return false, "", fmt.Errorf("drain: %w", err)
			}
		}
		return false, fmt.Sprintf("%d old workers left %v", n, om.Workers), nil
	})
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

// verify keeps checking the new generation for VerifyFor.
func (m *Machine) verify(ctx context.Context, nu *MasterObs) error {
	if m.opts.NoVerify {
		return nil
	}
	runs := 0
	err := waitFor(ctx, m.opts.VerifyFor, nil, func() (bool, string, error) {
		if st, err := m.sys.Info(nu.ID.PID); err != nil || st.Identity() != nu.ID || st.Zombie() {
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
	m.step("verify", "new generation healthy for %v (%d check rounds)", m.opts.VerifyFor, runs)
	return nil
}

// Commit finishes an upgrade left in Spawned or Drained (or one crashed
// half-way through its commit).
func (m *Machine) Commit(ctx context.Context) (*Report, error) {
	if err := m.begin("commit", true); err != nil {
		return m.end(err)
	}
	defer m.watch()()
	was := m.journalState()
	_, v := m.settle(ctx)
	if v.State == Committed && was == Committing {
		// Interrupted after the old master was told to stop: it finished.
		return m.end(m.finished(ctx, "the old master is gone"))
	}
	if v.State == Committed {
		return m.end(fmt.Errorf("%w: nothing to commit: %w", ErrBadInput, &TransitionError{From: v.State, Event: EvCommit}))
	}
	if v.State == Spawning && v.Old != nil {
		// An upgrade interrupted while its new master started: finish the
		// spawn (its checks, or a rollback when it fails), then commit.
		m.adopt(v)
		m.step("commit", "the new master is still starting: waiting up to %v for it", m.opts.SpawnTimeout)
		if _, err := m.spawn(ctx, v.Old, max(m.j.Workers, 1), fileStamp{}); err != nil {
			return m.fail(ctx, "spawn", err)
		}
		return m.end(m.commit(ctx))
	}
	if _, err := Next(v.State, EvCommit); err != nil {
		m.rep.Advice = v.Advice
		return m.end(fmt.Errorf("%w: %w", ErrBadInput, err))
	}
	if v.New == nil {
		return m.end(fmt.Errorf("%w: %w: no new master runs%s", ErrBadInput, &TransitionError{From: v.State, Event: EvCommit}, prefixed(": ", strings.Join(v.Findings, "; "))))
	}
	m.adopt(v)
	return m.end(m.commit(ctx))
}

// adopt takes the masters of a verdict into the journal (a later
// invocation, or masters that changed behind baton's back).
func (m *Machine) adopt(v Verdict) {
	if m.j == nil {
		m.j = &Journal{Flavor: m.flavor.Name, Pidfile: m.opts.Pidfile, Started: m.sys.Now(), State: v.State}
		m.step("reconcile", "no journal: found an upgrade in state %s", v.State)
	}
	if v.Old != nil {
		m.j.Old = v.Old.ID
		if m.j.Workers == 0 {
			m.j.Workers = max(len(v.Old.Workers), 1)
		}
	}
	if v.New != nil {
		m.j.New = v.New.ID
		if m.j.Workers == 0 || m.j.OldWorkers == 0 {
			m.j.Workers = max(m.j.Workers, len(v.New.Workers))
		}
	}
	if m.j.State != v.State {
		if err := m.record(EvReconcile, v.State, "adopted the observed masters"); err != nil {
			m.warn("%v", err)
		}
	}
}

// commit stops the old master and checks the new one took over.
func (m *Machine) commit(ctx context.Context) error {
	// Once the stop signal is decided, an interrupt does not stop the
	// commit half-way: it finishes (see doc.go, Interrupts).
	ctx, cancel := m.detached(ctx)
	defer cancel()
	oldID, newID := m.j.Old, m.j.New
	if err := m.record(EvCommit, 0, fmt.Sprintf("%s to %s", SignalName(m.flavor.Stop), oldID)); err != nil {
		return fmt.Errorf("%w: %w", ErrBadInput, err)
	}
	if oldID.PID != 0 {
		m.step("commit", "sent %s to old master %d", SignalName(m.flavor.Stop), oldID.PID)
		// The old workers told to drain, pinned by identity, go too: they
		// outlive an old master that was killed (nginx's keep serving their
		// keep-alive connections).
		if err := m.stop(ctx, oldID, m.j.DrainedWorkers); err != nil {
			m.mustRecord(EvBreak, err.Error())
			if m.hardStopped() {
				m.rep.Advice = m.stoppedAdvice("commit")
			}
			return fmt.Errorf("%w: commit: %w", ErrInconsistent, err)
		}
	}
	err := waitFor(ctx, m.opts.StopTimeout, m.wake, func() (bool, string, error) {
		o := m.observe()
		if o.Main.Master == nil || o.Main.Master.ID != newID {
			if st, err := m.sys.Info(newID.PID); err != nil || st.Identity() != newID || st.Zombie() {
				return false, "", fmt.Errorf("the new master %s is gone", newID)
			}
			return false, fmt.Sprintf("%s does not name the new master %d yet", m.opts.Pidfile, newID.PID), nil
		}
		if o.Aside.Exists {
			if o.Aside.Master == nil && o.Aside.PID == oldID.PID {
				// The old master died without removing its pid file (SIGKILL).
				if err := removeIfNames(o.Aside.Path, oldID.PID, m.sys.ReadPid); err != nil {
					return false, "", err
				}
				m.step("commit", "removed stale %s", o.Aside.Path)
				return false, "re-reading", nil
			}
			return false, fmt.Sprintf("%s still exists", o.Aside.Path), nil
		}
		return true, "", nil
	})
	if err == nil {
		err = m.checkAll(ctx)
	}
	if err != nil {
		m.mustRecord(EvBreak, err.Error())
		m.rep.Advice = "the old master is gone: fix or restart the new one; there is nothing to roll back to"
		if m.hardStopped() {
			m.rep.Advice = m.stoppedAdvice("commit")
		}
		return fmt.Errorf("%w: commit: %w", ErrInconsistent, err)
	}
	m.mustRecord(EvCommitted, fmt.Sprintf("new master %s", newID))
	m.step("commit", "old master %d is gone; %s names new master %d%s", oldID.PID, m.opts.Pidfile, newID.PID, checksSuffix(len(m.opts.Checks)))
	return nil
}

// removeIfNames removes path if it still names pid.
func removeIfNames(path string, pid int, read func(string) (int, error)) error {
	got, err := read(path)
	if err != nil || got != pid {
		return nil
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("upgrade: remove stale %s: %w", path, err)
	}
	return nil
}

// stop stops a master in two phases and a last resort: Stop, Terminate
// after StopTimeout, SIGKILL after another; then whatever of workers is left.
func (m *Machine) stop(ctx context.Context, id procs.Identity, workers []procs.Identity) error {
	p, err := m.open(id)
	if err == nil {
		defer p.Close()
		for i, sig := range []syscall.Signal{m.flavor.Stop, m.flavor.Terminate, ForceKill} {
			if i > 0 {
				m.step("stop", "master %d still runs after %v: sending %s", id.PID, m.opts.StopTimeout, SignalName(sig))
			}
			if err := p.Signal(sig); err != nil {
				if gone(err) {
					break
				}
				return err
			}
			wctx, cancel := context.WithTimeout(ctx, m.opts.StopTimeout)
			err := p.Wait(wctx)
			cancel()
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if sig == ForceKill {
				return fmt.Errorf("master %d survived %s: %w", id.PID, SignalName(sig), err)
			}
		}
	} else if !gone(err) {
		return err
	}
	// Workers outlive a killed master (nginx's do): stop the ones pinned
	// before, by identity, all at once: the graceful Stop (a worker busy
	// with a request finishes it: a fast stop would reset the connection),
	// Terminate and ForceKill for those still there StopTimeout apart.
	var left []Process
	for _, w := range workers {
		if wp, err := m.sys.Open(w); err == nil {
			defer wp.Close()
			left = append(left, wp)
		}
	}
	for _, sig := range []syscall.Signal{m.flavor.Stop, m.flavor.Terminate, ForceKill} {
		if len(left) == 0 {
			break
		}
		for _, wp := range left {
			_ = wp.Signal(sig)
		}
		wctx, cancel := context.WithTimeout(ctx, m.opts.StopTimeout)
		var still []Process
		for _, wp := range left {
			if wp.Wait(wctx) != nil {
				still = append(still, wp)
			}
		}
		cancel()
		left = still
	}
	if len(left) > 0 {
		return fmt.Errorf("%d processes survived %s", len(left), SignalName(ForceKill))
	}
	return nil
}

// Rollback undoes an upgrade in any state from Spawning to Drained, or one
// left Inconsistent while the old master lives.
func (m *Machine) Rollback(ctx context.Context) (*Report, error) {
	if err := m.begin("rollback", true); err != nil {
		return m.end(err)
	}
	defer m.watch()()
	was := m.journalState()
	_, v := m.settle(ctx)
	if v.State == RolledBack && was == RollingBack {
		// Interrupted half-way: the masters finished it (the old master
		// took its pid file back when the new one exited).
		return m.end(m.finished(ctx, "the new master is gone and the old one serves"))
	}
	if _, err := Next(v.State, EvRollback); err != nil {
		m.rep.Advice = v.Advice
		return m.end(fmt.Errorf("%w: %w", ErrBadInput, err))
	}
	if v.Old == nil {
		return m.end(fmt.Errorf("%w: %w: the old master is gone%s", ErrBadInput, &TransitionError{From: v.State, Event: EvRollback}, prefixed(": ", strings.Join(v.Findings, "; "))))
	}
	m.adopt(v)
	if v.New == nil && (m.j.New == v.Old.ID || m.j.New.PID == 0) {
		m.j.New = procs.Identity{}
	}
	// A rollback finishes whatever interrupts it, but a second (Hard).
	rctx, cancel := m.detached(ctx)
	defer cancel()
	if err := m.rollback(rctx, "requested"); err != nil {
		if m.hardStopped() {
			m.rep.Advice = m.stoppedAdvice("rollback")
		}
		return m.end(fmt.Errorf("%w: rollback: %w", ErrInconsistent, err))
	}
	return m.end(nil)
}

// rollback brings the old master's workers back, stops the new master and
// restores the pid file.
func (m *Machine) rollback(ctx context.Context, why string) error {
	fl := m.flavor
	oldID, newID := m.j.Old, m.j.New
	if err := m.record(EvRollback, 0, why); err != nil {
		m.warn("%v", err)
	}
	broke := func(err error) error {
		m.mustRecord(EvBreak, err.Error())
		return err
	}
	oldMaster := func() (*MasterObs, error) {
		st, err := m.sys.Info(oldID.PID)
		if err != nil || st.Identity() != oldID || st.Zombie() {
			return nil, fmt.Errorf("the old master %s is gone", oldID)
		}
		o := m.observe()
		for _, p := range []PidObs{o.Main, o.Aside} {
			if p.Master != nil && p.Master.ID == oldID {
				return p.Master, nil
			}
		}
		// Not named by any pid file (e.g. gone from both): look directly.
		return m.master(st, []int{newID.PID}), nil
	}
	want := max(m.j.Workers, 1)
	if m.j.OldWorkers > 0 {
		want = m.j.OldWorkers
	}
	mo, err := oldMaster()
	if err != nil {
		return broke(err)
	}
	// Workers that were told to drain may still be finishing: they count
	// only up to the number the drain left (a flavor's floor, or all when
	// the master ignored it). Any other worker is new: respawned by the
	// master itself (nginx does when its new master dies) or by us.
	before := m.j.DrainedWorkers
	keep := min(m.j.DrainedTo, len(before))
	if !m.j.drainSent() {
		before, keep = nil, 0
	}
	have := func(mo *MasterObs) int {
		fresh, old := 0, 0
		for _, id := range m.workerIDs(mo.Workers) {
			if slices.Contains(before, id) {
				old++
			} else {
				fresh++
			}
		}
		return fresh + min(old, keep)
	}
	n := have(mo)
	if n < want && fl.CountsDraining && len(before) > keep {
		// The master still counts the workers finishing their requests, and
		// replaces each one when it exits if its target was not lowered
		// for it: how many Respawn must add is known once they are gone.
		if keep, err = m.awaitDrained(ctx, oldID, before, keep); err != nil {
			return broke(err)
		}
		if mo, err = oldMaster(); err != nil {
			return broke(err)
		}
		n = have(mo)
	}
	// 1. The old master's workers come back.
	if n < want {
		count := 1
		if fl.RespawnAdds {
			count = want - n
		}
		m.step("rollback", "sending %s to old master %d (%s): %d of %d workers", SignalName(fl.Respawn), oldID.PID, map[bool]string{false: "once", true: "once per missing worker"}[fl.RespawnAdds], n, want)
		sent := 0
		step := nudger{now: m.sys.Now}
		err := waitFor(ctx, m.opts.SpawnTimeout, nil, func() (bool, string, error) {
			mo, err := oldMaster()
			if err != nil {
				return false, "", err
			}
			n := have(mo)
			if n >= want {
				if fl.StatusFile && (mo.Status == nil || !mo.Status.Ready) {
					return false, fmt.Sprintf("old master %d's status does not say ready", oldID.PID), nil
				}
				return true, "", nil
			}
			if sent < count || fl.RespawnAdds {
				if err := step.nudge(n, func() error { sent++; return m.signal(oldID, fl.Respawn) }); err != nil {
					return false, "", fmt.Errorf("respawn: %w", err)
				}
			}
			return false, fmt.Sprintf("old master %d has %d of %d workers (drained %d: %v)", oldID.PID, n, want, len(before), before), nil
		})
		if err != nil {
			return broke(err)
		}
	}
	// The checks run once the new master is gone: until then they may reach
	// its workers through the shared listeners.
	m.step("rollback", "old master %d has its workers back", oldID.PID)
	// 2. The new master goes, with its workers. One that never wrote its
	// pid file is found as the old master's child.
	if newID.PID == 0 {
		if st, err := m.sys.Info(oldID.PID); err == nil && st.Identity() == oldID {
			if kids := m.master(st, nil).ChildMasters; len(kids) > 0 {
				if cst, err := m.sys.Info(kids[0]); err == nil {
					newID = cst.Identity()
					m.j.New = newID
				}
			}
		}
	}
	var restoreAt time.Time
	if newID.PID != 0 {
		var workers []procs.Identity
		if st, err := m.sys.Info(newID.PID); err == nil && st.Identity() == newID {
			workers = m.workerIDs(m.master(st, []int{oldID.PID}).Workers)
		}
		m.step("rollback", "stopping new master %d (%s, then %s, then %s, %v apart)", newID.PID, SignalName(fl.Stop), SignalName(fl.Terminate), SignalName(ForceKill), m.opts.StopTimeout)
		if err := m.stop(ctx, newID, workers); err != nil {
			return broke(fmt.Errorf("stop the new master: %w", err))
		}
		if fl.RestoresPidfile {
			// Give the old master the chance to restore its pid file itself
			// (it does when it reaps the new one); inotify wakes the wait.
			restoreAt = m.sys.Now().Add(min(m.opts.StopTimeout/2, restoreGrace))
		}
	}
	// 2b. Whatever else still holds the listeners and is not the old
	// master's is left of the new generation: workers orphaned by a new
	// master that was killed (nginx's keep serving). They go too.
	if err := m.sweep(ctx, oldID); err != nil {
		return broke(err)
	}
	// 3. The pid file names the old master again, and no aside is left.
	var restoreErr error
	err = waitFor(ctx, m.opts.StopTimeout, m.wake, func() (bool, string, error) {
		o := m.observe()
		if o.Main.Master != nil && o.Main.Master.ID == oldID {
			if o.Aside.Exists && (o.Aside.Master == nil || o.Aside.PID == oldID.PID) {
				if err := removeIfNames(o.Aside.Path, newID.PID, m.sys.ReadPid); err != nil {
					return false, "", err
				}
				if err := removeIfNames(o.Aside.Path, oldID.PID, m.sys.ReadPid); err != nil {
					return false, "", err
				}
			}
			if o.Aside.Exists {
				return false, fmt.Sprintf("%s still exists", o.Aside.Path), nil
			}
			return true, "", nil
		}
		if !fl.AsideHoldsNew && o.Aside.Master != nil && o.Aside.Master.ID == oldID && o.Main.Master == nil {
			if m.sys.Now().Before(restoreAt) {
				return false, "waiting for the old master to restore " + m.opts.Pidfile, nil
			}
			if err := m.sys.RestoreOldbin(m.opts.Pidfile); err != nil {
				// The master may have won the race to the rename: re-read.
				restoreErr = err
				return false, fmt.Sprintf("restore %s: %v", m.opts.Pidfile, err), nil
			}
			m.step("rollback", "restored %s from %s", m.opts.Pidfile, o.Aside.Path)
			return false, "re-reading", nil
		}
		return false, fmt.Sprintf("%s does not name the old master %d yet", m.opts.Pidfile, oldID.PID), nil
	})
	if err != nil {
		if restoreErr != nil {
			err = fmt.Errorf("%w (last restore attempt: %w)", err, restoreErr)
		}
		return broke(err)
	}
	if err := m.checkAll(ctx); err != nil {
		return broke(fmt.Errorf("the old generation is not healthy: %w", err))
	}
	m.mustRecord(EvRolledBack, why)
	m.step("rollback", "%s names old master %d, which serves alone%s", m.opts.Pidfile, oldID.PID, checksSuffix(len(m.opts.Checks)))
	return nil
}

// awaitDrained waits up to DrainTimeout, woken by their exits, until at
// most keep of the workers told to drain still run (a master that counts
// them, CountsDraining, replaces one that exits when its target was not
// lowered for it, and Respawn spawns nothing while one still runs). It
// returns how many of them to count as the master's: keep, or all that
// still run when the time is up, which are there to stay.
func (m *Machine) awaitDrained(ctx context.Context, oldID procs.Identity, drained []procs.Identity, keep int) (int, error) {
	alive := func() int {
		n := 0
		for _, id := range drained {
			if m.anyAlive([]procs.Identity{id}) {
				n++
			}
		}
		return n
	}
	left := alive()
	if left <= keep {
		return keep, nil
	}
	wake := make(chan struct{}, 1)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for _, id := range drained {
		p, err := m.sys.Open(id)
		if err != nil {
			continue
		}
		go func() {
			defer p.Close()
			if p.Wait(wctx) == nil {
				select {
				case wake <- struct{}{}:
				default:
				}
			}
		}()
	}
	m.step("rollback", "waiting up to %v for %d old worker(s) told to drain to exit: %s counts them until they do", m.opts.DrainTimeout, left-keep, m.flavor.Name)
	err := waitFor(ctx, m.opts.DrainTimeout, wake, func() (bool, string, error) {
		if st, err := m.sys.Info(oldID.PID); err != nil || st.Identity() != oldID || st.Zombie() {
			return false, "", fmt.Errorf("the old master %s is gone", oldID)
		}
		if left = alive(); left <= keep {
			return true, "", nil
		}
		return false, fmt.Sprintf("%d old workers told to drain still run", left), nil
	})
	if errors.Is(err, ErrTimeout) {
		m.warn("%d old worker(s) told to drain still run after %v: counted as staying", left, m.opts.DrainTimeout)
		return left, nil
	}
	return keep, err
}

// nudgeEvery is how long a one-worker signal (TTOU, TTIN) may take effect
// before it is sent again: standard signals do not queue, so a second one
// sent while the first is pending is lost.
const nudgeEvery = time.Second

// nudger sends a one-worker signal after the previous one took effect (the
// count moved) or after nudgeEvery.
type nudger struct {
	now  func() time.Time
	sent bool
	n    int // the count when last sent
	at   time.Time
}

func (s *nudger) nudge(n int, send func() error) error {
	if s.sent && n == s.n && s.now().Sub(s.at) < nudgeEvery {
		return nil
	}
	if err := send(); err != nil {
		return err
	}
	s.sent, s.n, s.at = true, n, s.now()
	return nil
}

// sweep stops, by identity, the processes holding the old master's
// listening sockets that are neither the old master nor its workers.
func (m *Machine) sweep(ctx context.Context, oldID procs.Identity) error {
	ls, err := m.sys.Listeners(oldID.PID)
	if err != nil || len(ls) == 0 {
		return nil
	}
	pids, err := m.sys.Holders(inodes(ls))
	if err != nil {
		return nil
	}
	// The old master's children of the new generation, however titled
	// (something exec'd in place of the new binary that never gets ready,
	// a second new master): nginx ignores Upgrade while one lives.
	var kids []int
	if st, err := m.sys.Info(oldID.PID); err == nil && st.Identity() == oldID {
		kids = m.master(st, nil).ChildMasters
	}
	var strays []procs.Identity
	for _, pid := range pids {
		if pid == oldID.PID || pid == os.Getpid() {
			continue
		}
		st, err := m.sys.Info(pid)
		if err != nil || st.Zombie() {
			continue
		}
		if st.PPID == oldID.PID {
			if !slices.Contains(kids, pid) {
				continue // the old master's own worker
			}
			workers := m.workerIDs(m.master(st, []int{oldID.PID}).Workers)
			m.step("rollback", "stopping %d, a child of old master %d that is none of its workers and holds its listeners (%s, then %s, then %s, %v apart)", pid, oldID.PID, SignalName(m.flavor.Stop), SignalName(m.flavor.Terminate), SignalName(ForceKill), m.opts.StopTimeout)
			if err := m.stop(ctx, st.Identity(), workers); err != nil {
				return fmt.Errorf("stop %d: %w", pid, err)
			}
			continue
		}
		strays = append(strays, st.Identity())
	}
	if len(strays) == 0 {
		return nil
	}
	m.step("rollback", "stopping %d leftover process(es) of the new generation that still hold the listeners: %v", len(strays), strays)
	return m.stop(ctx, procs.Identity{}, strays)
}

// restoreGrace is the longest baton waits for an old master that restores
// its pid file itself before doing it (Options.StopTimeout/2 if shorter).
const restoreGrace = 2 * time.Second
