package upgrade

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/batonhq/baton/procs"
)

// The sweep is a rollback's last word on the new generation: once the new
// master is stopped, whatever of its generation still holds the listening
// sockets is stopped too (nginx's workers outlive a killed master and keep
// serving the new version). Every other holder is left alone: PID 1, the
// service manager that passed the sockets (systemd under socket
// activation, the master's ancestor), the old master and everything below
// it (a worker script that runs its server without exec leaves the server
// a grandchild of the old master), and anything unrelated. chooseSweep is
// the rule; sweep applies it.

// lineage is a snapshot of part of the process tree by pid: the holders of
// the listening sockets, the old master and the orchestrator, each with its
// ancestors, read one process at a time.
type lineage map[int]procs.Stat

// maxDepth bounds a walk up a lineage: a tree read one process at a time
// may not be consistent.
const maxDepth = 1024

// generations tells the sweep the two generations apart.
type generations struct {
	// old is the old master: it, its ancestors and its descendants (but
	// the new generation's masters, which it started) are never swept.
	old procs.Identity
	// self is the orchestrator: it and its ancestors are never swept.
	self int
	// roots are the new generation's masters, seen as the old master's
	// children (running, or exited and not reaped yet): they and their
	// descendants are swept.
	roots []procs.Identity
	// pinned are the new generation's processes the journal pinned
	// (Journal.NewWorkers): swept while they are the same identity, and
	// their descendants with them.
	pinned []procs.Identity
	// since is when the journal recorded the upgrade signal: an orphan
	// titled as a worker that started after it is a worker of a new
	// master that died before baton saw it (nginx's keep serving). Zero:
	// unknown.
	since time.Time
}

// sweepChoice is the sweep's verdict on one holder of the listeners.
type sweepChoice struct {
	id    procs.Identity
	sweep bool
	// old: the old master or its generation, which hold the listeners as
	// a matter of course.
	old bool
	why string
}

// line is where a walk up from a holder ends.
type line uint8

const (
	lineUnknown line = iota // the walk broke: a parent unreadable or younger than its child
	lineTop                 // reached PID 1 (or 0) meeting neither generation's master
	lineOld                 // met the old master first: its generation
	lineNew                 // met one of the new generation's masters first
)

// chooseSweep decides, for each holder of the listening sockets, whether a
// rollback's sweep may stop it. It may stop a process of the new
// generation: a descendant of one of its masters (g.roots), a process the
// journal pinned as the new generation's (g.pinned) that is still the same
// identity, or a descendant of one; or an orphan titled as a worker (or
// still as the master that forked it) that started after the upgrade
// signal (g.since). It never chooses PID 1, the
// orchestrator or its ancestors, the old master, its ancestors or its
// descendants outside the new generation's masters, nor a holder whose
// ancestry it cannot read through. Holders missing from tree (gone) or
// zombies get no verdict. It is pure.
func chooseSweep(holders []int, tree lineage, g generations) []sweepChoice {
	oldUp := tree.ancestors(g.old.PID)
	selfUp := tree.ancestors(g.self)
	var out []sweepChoice
	for _, pid := range holders {
		if pid == 1 {
			out = append(out, sweepChoice{id: procs.Identity{PID: 1}, why: "PID 1 (the service manager passes the sockets)"})
			continue
		}
		st, ok := tree[pid]
		if !ok || st.Zombie() {
			continue
		}
		c := sweepChoice{id: st.Identity()}
		switch {
		case pid == g.self || has(selfUp, st):
			c.why = "baton or its ancestor"
		case c.id == g.old:
			c.old, c.why = true, "the old master"
		case has(oldUp, st):
			c.why = "an ancestor of the old master (its service manager)"
		default:
			c.sweep, c.old, c.why = tree.judge(st, g)
		}
		out = append(out, c)
	}
	return out
}

// tick is how far a start time may read early: it counts clock ticks.
const tick = time.Second / procs.ClockTicks

// has reports whether set holds st's identity.
func has(set map[int]uint64, st procs.Stat) bool {
	start, ok := set[st.PID]
	return ok && start == st.Start
}

// judge places one holder that is none of the fixed points by its line:
// whether to sweep it, whether it is of the old generation, and why.
func (t lineage) judge(st procs.Stat, g generations) (sweep, old bool, why string) {
	end, pinned := t.walk(st, g)
	switch {
	case end == lineOld:
		return false, true, "the old master's generation"
	case end == lineNew:
		return true, false, "a process of a new master"
	case end == lineUnknown:
		return false, false, "its ancestry cannot be read"
	case pinned:
		return true, false, "pinned in the journal as the new generation's"
	case g.since.IsZero() || st.StartTime.Before(g.since.Add(-tick)):
	case st.Role() == procs.RoleWorker:
		return true, false, "an orphaned worker started by the upgrade"
	case st.Role() == procs.RoleMaster:
		// A master forks its workers under its own title, which each
		// changes a moment later (nginx in ngx_worker_process_cycle):
		// a worker forked just before its new master died is an orphan
		// still titled as a master. The old master's own forks are its
		// children (lineOld), and a new master is the old master's child
		// (lineNew) while the old one lives, which a rollback needs: a
		// master-titled orphan holding the listeners that started after
		// the upgrade signal can only come from a new master that died.
		return true, false, "an orphaned worker started by the upgrade, not yet retitled"
	}
	return false, false, "outside both generations"
}

// walk goes up from st (itself included) until it meets the old master or
// one of the new generation's masters, or the top. pinned says whether it
// met a pinned process on the way.
func (t lineage) walk(st procs.Stat, g generations) (end line, pinned bool) {
	for range maxDepth {
		id := st.Identity()
		switch {
		case id == g.old:
			return lineOld, pinned
		case slices.Contains(g.roots, id):
			return lineNew, pinned
		}
		pinned = pinned || slices.Contains(g.pinned, id)
		if st.PPID <= 1 {
			return lineTop, pinned
		}
		parent, ok := t[st.PPID]
		if !ok || parent.Start > st.Start {
			// Gone meanwhile, or its pid reused: a parent starts before
			// its child.
			return lineUnknown, pinned
		}
		st = parent
	}
	return lineUnknown, pinned
}

// ancestors returns pid's ancestors in t (pid → start time), up to the
// first one it cannot read.
func (t lineage) ancestors(pid int) map[int]uint64 {
	up := map[int]uint64{}
	st, ok := t[pid]
	for n := 0; ok && st.PPID > 0 && n < maxDepth; n++ {
		parent, found := t[st.PPID]
		if !found || parent.Start > st.Start {
			break
		}
		up[parent.PID] = parent.Start
		st, ok = parent, true
	}
	return up
}

// lineage reads the processes pids and their ancestors.
func (m *Machine) lineage(pids []int) lineage {
	t := lineage{}
	for _, pid := range pids {
		child := 0
		for p, n := pid, 0; p > 0 && n < maxDepth; n++ {
			if _, ok := t[p]; ok {
				break
			}
			// A zombie is kept: its pid and start time still name it, and
			// its children are not re-parented while another of its
			// threads is still exiting (the leader of a thread group
			// shows as a zombie first).
			st, err := m.sys.Info(p)
			if err != nil {
				// p was reaped since its child was read: the child has
				// been re-parented by now, so read it again, once.
				if again, ok := m.reparented(t, child, p); ok {
					t[child], p, child = again, again.PPID, 0
					continue
				}
				break
			}
			t[p] = st
			child, p = p, st.PPID
		}
	}
	return t
}

// reparented re-reads child, whose parent was read as gone: it returns it
// when it is the same process with another parent.
func (m *Machine) reparented(t lineage, child, parent int) (procs.Stat, bool) {
	if child == 0 {
		return procs.Stat{}, false
	}
	st, err := m.sys.Info(child)
	if err != nil || st.Start != t[child].Start || st.PPID == parent || st.Zombie() {
		return procs.Stat{}, false
	}
	return st, true
}

// sweep stops, by identity, the holders of the old master's listening
// sockets that chooseSweep picks: the new generation's masters still
// running (with their workers), then the rest at once. Holders outside
// both generations are named in a step and left alone. Without journaled,
// what the journal pinned as the new generation's counts for nothing.
func (m *Machine) sweep(ctx context.Context, oldID, newID procs.Identity, journaled bool) error {
	ls, err := m.sys.Listeners(oldID.PID)
	if err != nil || len(ls) == 0 {
		return nil
	}
	pids, err := m.sys.Holders(inodes(ls))
	if err != nil {
		return nil
	}
	g := generations{old: oldID, self: os.Getpid(), roots: m.newRoots(oldID, newID)}
	if journaled {
		g.pinned, g.since = m.j.NewWorkers, m.j.spawnedAt()
	}
	tree := m.lineage(append(slices.Clone(pids), oldID.PID, g.self))
	if st, ok := tree[newID.PID]; ok && st.Identity() == newID && st.PPID == oldID.PID && !slices.Contains(g.roots, newID) {
		// Stopped, but not reaped yet: what is still below it is its.
		g.roots = append(g.roots, newID)
	}
	choices := chooseSweep(pids, tree, g)
	var strays []procs.Identity
	var spared []string
	for _, c := range choices {
		switch {
		case !c.sweep:
			if !c.old {
				spared = append(spared, fmt.Sprintf("%d (%s)", c.id.PID, c.why))
			}
		case slices.Contains(g.roots, c.id):
			if err := m.sweepMaster(ctx, oldID, c.id); err != nil {
				return err
			}
		default:
			strays = append(strays, c.id)
		}
	}
	if len(spared) > 0 {
		m.step("rollback", "left alone, though they hold the listeners: %s", strings.Join(spared, ", "))
	}
	if len(strays) == 0 {
		return nil
	}
	m.step("rollback", "stopping %d leftover process(es) of the new generation that still hold the listeners: %v", len(strays), strays)
	return m.stop(ctx, procs.Identity{}, strays)
}

// newRoots are the new generation's live masters: the new master while it
// is the old master's child, and the old master's other children that are
// no workers of it (something exec'd in place of the new binary that never
// gets ready, a second new master: nginx ignores Upgrade while one lives).
func (m *Machine) newRoots(oldID, newID procs.Identity) []procs.Identity {
	var roots []procs.Identity
	if st, ok := m.running(newID); ok && st.PPID == oldID.PID {
		roots = append(roots, newID)
	}
	st, ok := m.running(oldID)
	if !ok {
		return roots
	}
	for _, pid := range m.master(st, []int{newID.PID}).ChildMasters {
		if cst, err := m.sys.Info(pid); err == nil && !cst.Zombie() && cst.PPID == oldID.PID && !slices.Contains(roots, cst.Identity()) {
			roots = append(roots, cst.Identity())
		}
	}
	return roots
}

// sweepMaster stops one of the new generation's masters found holding the
// listeners, with its workers.
func (m *Machine) sweepMaster(ctx context.Context, oldID, id procs.Identity) error {
	st, ok := m.running(id)
	if !ok {
		return nil
	}
	workers := m.master(st, []int{oldID.PID}).WorkerIDs
	m.step("rollback", "stopping %d, a child of old master %d that is none of its workers and holds its listeners (%s, then %s, then %s, %v apart)", id.PID, oldID.PID, SignalName(m.flavor.Stop), SignalName(m.flavor.Terminate), SignalName(ForceKill), m.opts.StopTimeout)
	if err := m.stop(ctx, id, workers); err != nil {
		return fmt.Errorf("stop %d: %w", id.PID, err)
	}
	return nil
}

// pinNewGeneration pins, in the journal, the new master's workers (as a
// look saw them) and (with deep) everything below them, for a sweep after
// the new master is gone. Pinned identities that no longer run are
// dropped (those the look saw need no second read); a failed write is a
// warning.
func (m *Machine) pinNewGeneration(workers []procs.Identity, deep bool) {
	ids := slices.Clone(workers)
	if deep {
		pids := make([]int, len(workers))
		for i, id := range workers {
			pids[i] = id.PID
		}
		ids = append(ids, m.descendants(pids)...)
	}
	kept := slices.DeleteFunc(slices.Clone(m.j.NewWorkers), func(id procs.Identity) bool {
		return !slices.Contains(workers, id) && !m.runs(id)
	})
	changed := len(kept) != len(m.j.NewWorkers)
	for _, id := range ids {
		if !slices.Contains(kept, id) {
			kept, changed = append(kept, id), true
		}
	}
	if !changed {
		return
	}
	m.j.NewWorkers = kept
	if err := m.saveJournal(); err != nil {
		m.warn("journal: %v", err)
	}
}

// maxPinned bounds the descendants pinned: a fork bomb is not pinned whole.
const maxPinned = 4096

// descendants lists, by identity, the live processes below pids.
func (m *Machine) descendants(pids []int) []procs.Identity {
	var out []procs.Identity
	queue := slices.Clone(pids)
	for len(queue) > 0 && len(out) < maxPinned {
		kids, _ := m.sys.Children(queue[0])
		queue = queue[1:]
		for _, k := range kids {
			if !k.Zombie() {
				out = append(out, k.Identity())
				queue = append(queue, k.PID)
			}
		}
	}
	return out
}
