package upgrade

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/batonhq/baton/procs"
)

// Commit finishes an upgrade left in Spawned or Drained (or one crashed
// half-way through its commit): the old master stops and the pid file
// names the new one. A failure wraps ErrInconsistent.
func (m *Machine) Commit(ctx context.Context) (*Report, error) {
	return m.command(ctx, "commit", m.commitVerb)
}

// commitVerb is Commit's body, run by command. An upgrade interrupted
// while its new master started finishes its spawn first.
func (m *Machine) commitVerb(ctx context.Context, v Verdict) error {
	if v.State == Committed && (m.was == Committing || m.was == Inconsistent) {
		// Interrupted after the old master was told to stop, or left
		// Inconsistent when the old master died: the masters finished it.
		return m.finished(ctx, "the old master is gone")
	}
	if v.State == Committed {
		return fmt.Errorf("%w: nothing to commit: %w", ErrBadInput, &TransitionError{From: v.State, Event: EvCommit})
	}
	if v.State == Spawning && v.Old != nil {
		// An upgrade interrupted while its new master started: finish the
		// spawn (its checks, or a rollback when it fails), then commit.
		m.adopt(v)
		m.step("commit", "the new master is still starting: waiting up to %v for it", m.opts.SpawnTimeout)
		if _, err := m.spawn(ctx, v.Old, max(m.j.Workers, 1), fileStamp{}); err != nil {
			return m.fail(ctx, "spawn", err)
		}
		return m.commit(ctx)
	}
	if _, err := Next(v.State, EvCommit); err != nil {
		m.rep.Advice = v.Advice
		return fmt.Errorf("%w: %w", ErrBadInput, err)
	}
	if v.New == nil {
		return fmt.Errorf("%w: %w: no new master runs%s", ErrBadInput, &TransitionError{From: v.State, Event: EvCommit}, prefixed(": ", strings.Join(v.Findings, "; ")))
	}
	m.adopt(v)
	return m.commit(ctx)
}

// commit stops the old master and checks the new one took over.
func (m *Machine) commit(ctx context.Context) error {
	defer m.span("commit")()
	// Once the stop signal is decided, an interrupt does not stop the
	// commit half-way: it finishes (see doc.go, Interrupts).
	ctx, cancel := m.detached(ctx)
	defer cancel()
	oldID, newID := m.j.Old, m.j.New
	if err := m.record(EvCommit, 0, fmt.Sprintf("%s to %s", SignalName(m.flavor.Stop), oldID)); err != nil {
		return fmt.Errorf("%w: %w", ErrBadInput, err)
	}
	if err := m.stopOld(ctx, oldID, newID); err != nil {
		m.mustRecord(EvBreak, err.Error())
		if m.hardStopped() {
			m.rep.Advice = m.stoppedAdvice("commit")
		}
		return fmt.Errorf("%w: commit: %w", ErrInconsistent, err)
	}
	err := waitFor(ctx, m.opts.StopTimeout, m.wake, func() (bool, string, error) {
		o := m.observe()
		if o.Main.Master == nil || o.Main.Master.ID != newID {
			if !m.runs(newID) {
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

// stopOld stops the old master, and the old workers told to drain that are
// still its children, pinned by identity before the stop: they outlive an
// old master that is killed (nginx's keep serving their keep-alive
// connections). An old master that live observation does not confirm (no
// pid file names it and it is not the new master's parent) is not
// signalled, nor are drained workers it no longer parents.
func (m *Machine) stopOld(ctx context.Context, oldID, newID procs.Identity) error {
	st, ok := m.running(oldID)
	if !ok {
		// Old workers that outlived their killed master (nginx's keep
		// serving their keep-alive connections) go too, but only those
		// live observation confirms: the journal's identity, holding the
		// new master's listening sockets.
		left := m.workersLeft(m.j.DrainedWorkers)
		held := m.holding(newID, left)
		if len(held) < len(left) {
			m.warn("the old master %s is gone; %d old worker(s) it told to drain outlived it without holding the listeners and are not signalled", oldID, len(left)-len(held))
		}
		if len(held) == 0 {
			return nil
		}
		m.step("commit", "the old master %s is gone; stopping %d old worker(s) that outlived it", oldID, len(held))
		return m.stop(ctx, oldID, held)
	}
	if !m.confirmedOld(st, newID) {
		m.warn("the journal's old master %s runs, but no pid file names it and it is not the new master's parent: not signalled", oldID)
		return nil
	}
	m.step("commit", "sent %s to old master %d", SignalName(m.flavor.Stop), oldID.PID)
	return m.stop(ctx, oldID, m.childrenOf(oldID, m.j.DrainedWorkers))
}

// holding returns those of ids that hold one of master's listening sockets.
func (m *Machine) holding(master procs.Identity, ids []procs.Identity) []procs.Identity {
	if len(ids) == 0 {
		return nil
	}
	ls, err := m.sys.Listeners(master.PID)
	if err != nil || len(ls) == 0 {
		return nil
	}
	pids, err := m.sys.Holders(inodes(ls))
	if err != nil {
		return nil
	}
	return slices.DeleteFunc(slices.Clone(ids), func(id procs.Identity) bool { return !slices.Contains(pids, id.PID) })
}

// workersLeft returns those of ids that still run.
func (m *Machine) workersLeft(ids []procs.Identity) []procs.Identity {
	return slices.DeleteFunc(slices.Clone(ids), func(id procs.Identity) bool { return !m.runs(id) })
}

// removeIfNames removes path if it still names pid.
func removeIfNames(path string, pid int, read func(string) (int, error)) error {
	got, err := read(path)
	if err != nil || got != pid {
		return nil
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove stale %s: %w", path, err)
	}
	return nil
}
