package upgrade

import (
	"context"
	"fmt"
	"os"
	"slices"
	"syscall"

	"github.com/batonhq/baton/procs"
)

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
	if st, ok := m.running(oldID); ok {
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
