//go:build linux

package master

import (
	"os"
	"reflect"
	"runtime"
	"slices"
	"time"

	"github.com/batonhq/baton/upgrade/statusfile"
)

// status describes the master as the status file publishes it.
func (m *master) status() statusfile.Master {
	s := statusfile.Master{
		PID:            os.Getpid(),
		Start:          m.start,
		Parent:         m.parentPID,
		Generation:     m.genNum,
		UpgradePending: m.otherMasterAlive(),
		Draining:       m.draining,
		Binary:         m.binary,
		Dir:            m.cfg.dir,
		Workers:        []statusfile.Worker{},
		Listeners:      []statusfile.Listener{},
		Goroutines:     runtime.NumGoroutine(),
		Reloads:        m.reloads,
		ReloadError:    m.reloadErr,
	}
	if g := m.current(); g != nil && !m.stopping {
		s.Ready = m.generationReady(g)
	}
	for _, g := range m.gens {
		for _, sl := range g.slots {
			if sl.fails >= m.cfg.crashLoop && !g.retiring {
				s.CrashLoop = true
			}
			if sl.w == nil && sl.backoff != nil {
				s.Workers = append(s.Workers, statusfile.Worker{Generation: g.num, State: stateBackoff, Restarts: sl.restarts})
			}
		}
	}
	for _, w := range m.workers {
		s.Workers = append(s.Workers, statusfile.Worker{PID: w.pid, Generation: w.slot.gen.num,
			State: w.state.String(), Restarts: w.slot.restarts})
	}
	slices.SortFunc(s.Workers, func(a, b statusfile.Worker) int {
		if a.Generation != b.Generation {
			return a.Generation - b.Generation
		}
		return a.PID - b.PID
	})
	for i, l := range m.lns {
		s.Listeners = append(s.Listeners, statusfile.Listener{Name: l.spec.Name, Network: l.network,
			Addr: l.addr, Inode: l.inode, FD: int(l.file.Fd())})
		_ = i
	}
	return s
}

// writeStatus rewrites the status file when anything in it changed, and
// returns the status.
func (m *master) writeStatus() statusfile.Master {
	s := m.status()
	if m.statusPath == "" {
		return s
	}
	prev := m.lastStatus
	prev.Updated = time.Time{}
	if reflect.DeepEqual(prev, s) {
		return s
	}
	s.Updated = time.Now().UTC()
	if err := statusfile.Write(m.statusPath, s); err != nil {
		m.log.Warn("writing status file", "err", err)
		return s
	}
	m.lastStatus = s
	return s
}
