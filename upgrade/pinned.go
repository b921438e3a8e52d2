package upgrade

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"

	"github.com/batonhq/baton/procs"
)

// Every master and worker is pinned by identity (pid and start time) before
// it is signalled or waited for: a recycled pid is never taken for it.

// running returns the status of id while it still runs: the same pid and
// start time, and not a zombie.
func (m *Machine) running(id procs.Identity) (procs.Stat, bool) {
	st, err := m.sys.Info(id.PID)
	if err != nil || st.Identity() != id || st.Zombie() {
		return procs.Stat{}, false
	}
	return st, true
}

// reaped reports whether the process id is gone from the process table:
// not even a zombie left, so its parent has waited for it.
func (m *Machine) reaped(id procs.Identity) bool {
	st, err := m.sys.Info(id.PID)
	return (err != nil && gone(err)) || (err == nil && st.Identity() != id)
}

// runs reports whether the process id still runs (not a zombie).
func (m *Machine) runs(id procs.Identity) bool {
	_, ok := m.running(id)
	return ok
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

// wakeOnExit returns a channel that receives when one of ids exits (each
// exit is an event: a pidfd), until ctx is done. One already gone is
// skipped: the wait's first look sees it.
func (m *Machine) wakeOnExit(ctx context.Context, ids []procs.Identity) <-chan struct{} {
	wake := make(chan struct{}, 1)
	for _, id := range ids {
		p, err := m.sys.Open(id)
		if err != nil {
			continue
		}
		go func() {
			defer p.Close()
			if p.Wait(ctx) == nil {
				select {
				case wake <- struct{}{}:
				default:
				}
			}
		}()
	}
	return wake
}

// open pins a master by identity.
func (m *Machine) open(id procs.Identity) (Process, error) {
	if id.PID <= 0 {
		return nil, fmt.Errorf("no master recorded: %w", procs.ErrGone)
	}
	return m.sys.Open(id)
}

// signal sends sig to the process pinned as id. A gone process wraps
// procs.ErrGone; a reused pid procs.ErrReused and is never signalled.
func (m *Machine) signal(id procs.Identity, sig syscall.Signal) error {
	p, err := m.open(id)
	if err != nil {
		return err
	}
	defer p.Close()
	return p.Signal(sig)
}

func gone(err error) bool {
	return errors.Is(err, procs.ErrGone) || errors.Is(err, procs.ErrReused) || errors.Is(err, os.ErrProcessDone)
}

// The journal names the masters and workers baton pinned, but an identity
// is signalled only while live observation confirms its role: the journal
// may be stale (an upgrade long finished, another boot whose pids and start
// times happen to match), and baton never signals on its word alone.

// confirmedNew reports whether st, running, is the new master of the old
// master oldID by live observation: oldID's child, or named by a pid file.
func (m *Machine) confirmedNew(st procs.Stat, oldID procs.Identity) bool {
	return st.PPID == oldID.PID && m.runs(oldID) || m.named(st)
}

// confirmedOld reports whether st, running, is the old master of the new
// master newID by live observation: named by a pid file, or newID's parent.
func (m *Machine) confirmedOld(st procs.Stat, newID procs.Identity) bool {
	if m.named(st) {
		return true
	}
	nst, ok := m.running(newID)
	return ok && nst.PPID == st.PID
}

// named reports whether the pid file or the flavor's aside file names st,
// and was written after st started (else it named an earlier process that
// had the pid).
func (m *Machine) named(st procs.Stat) bool {
	for _, path := range []string{m.opts.Pidfile, m.flavor.AsidePath(m.opts.Pidfile)} {
		p, written := m.readPid(path)
		if p.Err != "" || p.PID != st.PID {
			continue
		}
		if written.IsZero() || st.StartTime.IsZero() || !st.StartTime.After(written.Add(reuseSlack)) {
			return true
		}
	}
	return false
}

// childrenOf returns those of ids that run as children of parent.
func (m *Machine) childrenOf(parent procs.Identity, ids []procs.Identity) []procs.Identity {
	var out []procs.Identity
	for _, id := range ids {
		if st, ok := m.running(id); ok && st.PPID == parent.PID {
			out = append(out, id)
		}
	}
	return out
}
