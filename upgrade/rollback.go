package upgrade

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/batonhq/baton/procs"
)

// Rollback undoes an upgrade in any state from Spawning to Drained, or one
// left Inconsistent while the old master lives: the old workers come back,
// the new master stops and the pid file names the old master again. A
// failure wraps ErrInconsistent.
func (m *Machine) Rollback(ctx context.Context) (*Report, error) {
	return m.command(ctx, "rollback", m.rollbackVerb)
}

// rollbackVerb is Rollback's body, run by command.
func (m *Machine) rollbackVerb(ctx context.Context, v Verdict) error {
	if v.State == RolledBack && (m.was == RollingBack || m.was == Inconsistent) {
		// Interrupted half-way, or left Inconsistent when the new master
		// died: the masters finished it (the old master took its pid file
		// back when the new one exited).
		return m.finished(ctx, "the new master is gone and the old one serves")
	}
	if _, err := Next(v.State, EvRollback); err != nil {
		m.rep.Advice = v.Advice
		return fmt.Errorf("%w: %w", ErrBadInput, err)
	}
	if v.Old == nil {
		return fmt.Errorf("%w: %w: the old master is gone%s", ErrBadInput, &TransitionError{From: v.State, Event: EvRollback}, prefixed(": ", strings.Join(v.Findings, "; ")))
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
		return fmt.Errorf("%w: rollback: %w", ErrInconsistent, err)
	}
	return nil
}

// rollback brings the old master's workers back, stops the new master and
// restores the pid file: the steps of a rollbackPlan, in order. A failed
// step is recorded as a break and ends the rollback.
func (m *Machine) rollback(ctx context.Context, why string) error {
	if err := m.record(EvRollback, 0, why); err != nil {
		m.warn("%v", err)
	}
	p := m.planRollback()
	for _, step := range []func(context.Context) error{
		p.restoreWorkers, // 1. the old master's workers come back
		p.stopNew,        // 2. the new master goes, with its workers
		p.sweep,          // 2b. and whatever else of its generation holds the listeners
		p.restorePidfile, // 3. the pid file names the old master again
		p.checkOld,       // 4. the old generation passes the checks
	} {
		if err := step(ctx); err != nil {
			m.mustRecord(EvBreak, err.Error())
			return err
		}
	}
	m.mustRecord(EvRolledBack, why)
	m.step("rollback", "%s names old master %d, which serves alone%s", m.opts.Pidfile, p.oldID.PID, checksSuffix(len(m.opts.Checks)))
	return nil
}

// rollbackPlan is what one rollback works from, taken from the journal.
type rollbackPlan struct {
	m            *Machine
	oldID, newID procs.Identity
	want         int // the old master's workers wanted back
	// drained are the workers told to drain (none when no drain was sent).
	// They may still be finishing: they count only up to keep, the number
	// the drain left (a flavor's floor, or all when the master ignored it).
	// Any other worker is new: respawned by the master itself (nginx does
	// when its new master dies) or by us.
	drained []procs.Identity
	keep    int
	// restoreAt: until then the old master may restore its pid file itself.
	restoreAt  time.Time
	restoreErr error // the last failed restore of the pid file
	// unconfirmed: the journal's new master runs but nothing live says it
	// is the new master; neither it nor what the journal pinned as its
	// generation is signalled.
	unconfirmed bool
}

func (m *Machine) planRollback() *rollbackPlan {
	p := &rollbackPlan{m: m, oldID: m.j.Old, newID: m.j.New, want: max(m.j.Workers, 1)}
	if m.j.OldWorkers > 0 {
		p.want = m.j.OldWorkers
	}
	if m.j.drainSent() {
		p.drained = m.j.DrainedWorkers
		p.keep = min(m.j.DrainedTo, len(p.drained))
	}
	return p
}

// oldMaster observes the old master, failing when it is gone.
func (p *rollbackPlan) oldMaster() (*MasterObs, error) {
	m := p.m
	st, ok := m.running(p.oldID)
	if !ok {
		return nil, fmt.Errorf("the old master %s is gone", p.oldID)
	}
	o := m.observe()
	for _, f := range []PidObs{o.Main, o.Aside} {
		if f.Master != nil && f.Master.ID == p.oldID {
			return f.Master, nil
		}
	}
	// Not named by any pid file (e.g. gone from both): look directly.
	return m.master(st, []int{p.newID.PID}), nil
}

// have counts the old master's workers: new ones, and drained ones up to keep.
func (p *rollbackPlan) have(mo *MasterObs) int {
	fresh, old := 0, 0
	for _, id := range mo.WorkerIDs {
		if slices.Contains(p.drained, id) {
			old++
		} else {
			fresh++
		}
	}
	return fresh + min(old, p.keep)
}

// restoreWorkers brings the old master's workers back (Respawn). The
// checks wait for the new master to be gone: until then they may reach its
// workers through the shared listeners.
func (p *rollbackPlan) restoreWorkers(ctx context.Context) error {
	m, fl := p.m, p.m.flavor
	mo, err := p.oldMaster()
	if err != nil {
		return err
	}
	n := p.have(mo)
	if n < p.want && fl.CountsDraining && len(p.drained) > p.keep {
		// The master still counts the workers finishing their requests, and
		// replaces each one when it exits if its target was not lowered
		// for it: how many Respawn must add is known once they are gone.
		if p.keep, err = m.awaitDrained(ctx, p.oldID, p.drained, p.keep); err != nil {
			return err
		}
		if mo, err = p.oldMaster(); err != nil {
			return err
		}
		n = p.have(mo)
	}
	if n < p.want && fl.RespawnsWorkers && p.newID.PID != 0 && !m.runs(p.newID) {
		if n, err = p.awaitSelfRestore(ctx, n); err != nil {
			return err
		}
		if n < p.want {
			m.warn("old master %d did not restart its workers itself within %s of reaping the new master; sending %s, with which it reads its configuration again", p.oldID.PID, nudgeEvery, SignalName(fl.Respawn))
		}
	}
	if n < p.want {
		if err := p.respawn(ctx, n); err != nil {
			return err
		}
	}
	m.step("rollback", "old master %d has its workers back", p.oldID.PID)
	return nil
}

// awaitSelfRestore waits for an old master that restarts its workers by
// itself once its new master is gone (the flavor's RespawnsWorkers) to do
// so, and returns how many it has. Respawn would no longer mean "bring the
// workers back" then: nginx's HUP without a new binary re-reads the
// configuration on disk, which may be the new release's
// (TestFaultNewMasterKilled/nginx served the new version after its
// rollback), and a baton master's starts a generation from it. The master
// restarts its workers as it reaps the new one; if the count is still
// short nudgeEvery after the reap without moving (a Drain that reached the
// master after the new one died stops its workers with nothing to restart
// them), it returns and the caller sends Respawn after all.
func (p *rollbackPlan) awaitSelfRestore(ctx context.Context, n int) (int, error) {
	m := p.m
	m.step("rollback", "new master %d is gone: waiting for old master %d to restart its workers itself: %d of %d workers", p.newID.PID, p.oldID.PID, n, p.want)
	var since time.Time // when the new master was seen reaped or the count last moved
	seen := n
	err := waitFor(ctx, m.opts.SpawnTimeout, nil, func() (bool, string, error) {
		mo, err := p.oldMaster()
		if err != nil {
			return false, "", err
		}
		if n = p.have(mo); n >= p.want {
			return true, "", nil
		}
		if !m.reaped(p.newID) {
			return false, fmt.Sprintf("old master %d has not reaped new master %d yet", p.oldID.PID, p.newID.PID), nil
		}
		now := m.sys.Now()
		if since.IsZero() || n != seen {
			since, seen = now, n
		}
		if now.Sub(since) >= nudgeEvery {
			return true, "", nil
		}
		return false, fmt.Sprintf("old master %d has %d of %d workers", p.oldID.PID, n, p.want), nil
	})
	return n, err
}

// respawn sends Respawn until the old master has its workers back. Where
// the flavor's Respawn adds one worker (RespawnAdds), it sends one at a
// time and the next only once the last took effect, so none is lost to a
// signal still pending and none is sent twice; the signals sent are
// journaled, so an orchestrator resuming a killed rollback waits for
// those still on their way. A count above the target (a Respawn acting
// late) is taken back with DrainStep, and the count must hold for
// nudgeEvery after the last signal.
func (p *rollbackPlan) respawn(ctx context.Context, n int) error {
	m, fl := p.m, p.m.flavor
	if !fl.RespawnAdds {
		return p.respawnOnce(ctx, n)
	}
	if m.j.Respawned == 0 {
		m.j.RespawnBase = n
	}
	m.step("rollback", "sending %s to old master %d once per missing worker: %d of %d workers", SignalName(fl.Respawn), p.oldID.PID, n, p.want)
	var last time.Time
	moved, seen := m.sys.Now(), n
	return waitFor(ctx, m.opts.SpawnTimeout, nil, func() (bool, string, error) {
		mo, err := p.oldMaster()
		if err != nil {
			return false, "", err
		}
		n := p.have(mo)
		if n != seen {
			moved, seen = m.sys.Now(), n
		}
		expect := m.j.RespawnBase + m.j.Respawned
		if last.After(moved) {
			moved = last
		}
		if n < expect && n < p.want && m.sys.Now().Sub(moved) >= respawnLost {
			// The journal counts a signal before it is sent, so that a
			// resumed rollback never sends one twice; an orchestrator
			// killed between the two leaves one counted that never left.
			// None has taken effect for respawnLost: count from what runs
			// (one sent late is taken back below with DrainStep).
			m.j.RespawnBase, m.j.Respawned = n, 0
			expect = n
			if err := m.saveJournal(); err != nil {
				m.warn("journal: %v", err)
			}
		}
		switch {
		case n < p.want && n >= expect:
			m.j.Respawned++
			if err := m.saveJournal(); err != nil {
				m.warn("journal: %v", err)
			}
			last = m.sys.Now()
			if err := m.signal(p.oldID, fl.Respawn); err != nil {
				return false, "", fmt.Errorf("respawn: %w", err)
			}
		case n > p.want && fl.DrainStep != 0 && m.sys.Now().Sub(last) >= nudgeEvery:
			m.j.RespawnBase--
			last = m.sys.Now()
			if err := m.signal(p.oldID, fl.DrainStep); err != nil {
				return false, "", fmt.Errorf("%s: %w", SignalName(fl.DrainStep), err)
			}
		case n == p.want && n >= expect && m.sys.Now().Sub(last) >= nudgeEvery:
			return true, "", nil
		}
		return false, fmt.Sprintf("old master %d has %d of %d workers, %d %s on their way (drained %d: %v)", p.oldID.PID, n, p.want, max(expect-n, 0), SignalName(fl.Respawn), len(p.drained), p.drained), nil
	})
}

// respawnOnce sends Respawn (HUP: a whole generation) until the old master
// has its workers and, with a status file, says it is ready; again after
// nudgeEvery when it did not take effect.
func (p *rollbackPlan) respawnOnce(ctx context.Context, n int) error {
	m, fl := p.m, p.m.flavor
	m.step("rollback", "sending %s to old master %d (once): %d of %d workers", SignalName(fl.Respawn), p.oldID.PID, n, p.want)
	sent := 0
	step := nudger{now: m.sys.Now}
	return waitFor(ctx, m.opts.SpawnTimeout, nil, func() (bool, string, error) {
		mo, err := p.oldMaster()
		if err != nil {
			return false, "", err
		}
		n := p.have(mo)
		if n >= p.want {
			if fl.StatusFile && (mo.Status == nil || !mo.Status.Ready) {
				return false, fmt.Sprintf("old master %d's status does not say ready", p.oldID.PID), nil
			}
			return true, "", nil
		}
		if sent < 1 {
			if err := step.nudge(n, func() error { sent++; return m.signal(p.oldID, fl.Respawn) }); err != nil {
				return false, "", fmt.Errorf("respawn: %w", err)
			}
		}
		return false, fmt.Sprintf("old master %d has %d of %d workers (drained %d: %v)", p.oldID.PID, n, p.want, len(p.drained), p.drained), nil
	})
}

// stopNew stops the new master and its workers. One that never wrote its
// pid file is found as the old master's child.
func (p *rollbackPlan) stopNew(ctx context.Context) error {
	m, fl := p.m, p.m.flavor
	if p.newID.PID == 0 {
		if st, ok := m.running(p.oldID); ok {
			if kids := m.master(st, nil).ChildMasters; len(kids) > 0 {
				if cst, err := m.sys.Info(kids[0]); err == nil {
					p.newID = cst.Identity()
					m.j.New = p.newID
				}
			}
		}
	}
	if p.newID.PID == 0 {
		return nil
	}
	var workers []procs.Identity
	if st, ok := m.running(p.newID); ok {
		if !m.confirmedNew(st, p.oldID) {
			// The journal names it, but nothing live says it is the new
			// master: never signal an identity on the journal's word alone.
			m.warn("the journal's new master %s runs, but it is not the old master %d's child and no pid file names it: not signalled", p.newID, p.oldID.PID)
			p.unconfirmed = true
			return nil
		}
		workers = m.master(st, []int{p.oldID.PID}).WorkerIDs
		// Pinned with everything below them before the stop: what
		// outlives it (a worker's child that left its process group) is
		// still known to the sweep as the new generation's.
		m.pinNewGeneration(workers, true)
	}
	m.step("rollback", "stopping new master %d (%s, then %s, then %s, %v apart)", p.newID.PID, SignalName(fl.Stop), SignalName(fl.Terminate), SignalName(ForceKill), m.opts.StopTimeout)
	if err := m.stop(ctx, p.newID, workers); err != nil {
		return fmt.Errorf("stop the new master: %w", err)
	}
	if fl.RestoresPidfile {
		// Give the old master the chance to restore its pid file itself
		// (it does when it reaps the new one); inotify wakes the wait.
		p.restoreAt = m.sys.Now().Add(min(m.opts.StopTimeout/2, restoreGrace))
	}
	return nil
}

// sweep stops what is left of the new generation holding the listeners:
// workers orphaned by a new master that was killed (nginx's keep serving),
// another child master of the old one. Nothing else (sweep.go).
func (p *rollbackPlan) sweep(ctx context.Context) error {
	return p.m.sweep(ctx, p.oldID, p.newID, !p.unconfirmed)
}

// restorePidfile waits until the pid file names the old master again and
// no aside is left, restoring it from the aside when the old master does
// not (in time).
func (p *rollbackPlan) restorePidfile(ctx context.Context) error {
	err := waitFor(ctx, p.m.opts.StopTimeout, p.m.wake, func() (bool, string, error) {
		return p.probePidfile(p.m.observe())
	})
	if err != nil && p.restoreErr != nil {
		err = fmt.Errorf("%w (last restore attempt: %w)", err, p.restoreErr)
	}
	return err
}

// probePidfile is one look of restorePidfile.
func (p *rollbackPlan) probePidfile(o Observation) (bool, string, error) {
	m, oldID := p.m, p.oldID
	if o.Main.Master != nil && o.Main.Master.ID == oldID {
		if o.Aside.Exists && (o.Aside.Master == nil || o.Aside.PID == oldID.PID) {
			if err := removeIfNames(o.Aside.Path, p.newID.PID, m.sys.ReadPid); err != nil {
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
	if !m.flavor.AsideHoldsNew && o.Aside.Master != nil && o.Aside.Master.ID == oldID && o.Main.Master == nil {
		if m.sys.Now().Before(p.restoreAt) {
			return false, "waiting for the old master to restore " + m.opts.Pidfile, nil
		}
		if err := m.sys.RestoreOldbin(m.opts.Pidfile); err != nil {
			// The master may have won the race to the rename: re-read.
			p.restoreErr = err
			return false, fmt.Sprintf("restore %s: %v", m.opts.Pidfile, err), nil
		}
		m.step("rollback", "restored %s from %s", m.opts.Pidfile, o.Aside.Path)
		return false, "re-reading", nil
	}
	return false, fmt.Sprintf("%s does not name the old master %d yet", m.opts.Pidfile, oldID.PID), nil
}

// checkOld runs the checks against the old generation, alone again.
func (p *rollbackPlan) checkOld(ctx context.Context) error {
	if err := p.m.checkAll(ctx); err != nil {
		return fmt.Errorf("the old generation is not healthy: %w", err)
	}
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
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wake := m.wakeOnExit(wctx, drained)
	m.step("rollback", "waiting up to %v for %d old worker(s) told to drain to exit: %s counts them until they do", m.opts.DrainTimeout, left-keep, m.flavor.Name)
	err := waitFor(ctx, m.opts.DrainTimeout, wake, func() (bool, string, error) {
		if !m.runs(oldID) {
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

// respawnLost is how long a rollback waits for Respawn signals the journal
// counts as sent before it takes them for lost (see respawn): several
// nudgeEvery, for a master busy booting a worker.
const respawnLost = 5 * nudgeEvery

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

// restoreGrace is the longest baton waits for an old master that restores
// its pid file itself before doing it (Options.StopTimeout/2 if shorter).
const restoreGrace = 2 * time.Second
