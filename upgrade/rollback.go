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
// left Inconsistent while the old master lives.
func (m *Machine) Rollback(ctx context.Context) (*Report, error) {
	if err := m.begin("rollback", true); err != nil {
		return m.end(err)
	}
	defer m.watch()()
	_, v := m.settle()
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
	if err := m.rollback(ctx, "requested"); err != nil {
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
		st, ok := m.running(oldID)
		if !ok {
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
		if st, ok := m.running(oldID); ok {
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
		if st, ok := m.running(newID); ok {
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
