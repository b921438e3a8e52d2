package upgrade

import (
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/batonhq/baton/procs"
)

// sweepTree is a process tree under socket activation: systemd (1) started
// a holder of the sockets (50) that started the old master (101); baton
// (41) runs from a shell (40). Start times grow with age from boot.
//
//	1 init
//	├── 40 sh ── 41 baton upgrade
//	├── 50 service manager ── 101 old master
//	│                          ├── 102 /bin/sh worker.sh ── 103 app (no exec)
//	│                          ├── 126 pinned, re-parented to the old master
//	│                          └── 110 new master ── 111 worker ── 112 its child
//	├── 120 pinned orphan ── 127 its child
//	├── 122 pinned pid, another start time
//	├── 123 an unrelated holder
//	├── 124 nginx: worker process, started after the new master
//	├── 125 nginx: worker process, started before the new master
//	├── 128 pinned, its parent 129 younger than itself (pid reused)
//	├── 130 pinned, its parent 131 unreadable
//	├── 132 nginx: master process (a worker not yet retitled), after the new master
//	└── 133 nginx: master process, started before the new master
func sweepTree() lineage {
	t := lineage{}
	add := func(pid, ppid int, start uint64, cmd string) {
		t[pid] = procs.Stat{PID: pid, PPID: ppid, State: 'S', Start: start, StartTime: sweepBoot.Add(time.Duration(start) * tick), Cmdline: []string{cmd}}
	}
	add(1, 0, 1, "/sbin/init")
	add(40, 1, 100, "sh")
	add(41, 40, 900, "baton upgrade rollback")
	add(50, 1, 200, "socket-holder")
	add(101, 50, 300, "nginx: master process /usr/sbin/nginx")
	add(102, 101, 310, "/bin/sh worker.sh")
	add(103, 102, 320, "app")
	add(110, 101, 400, "nginx: master process /usr/sbin/nginx")
	add(111, 110, 410, "nginx: worker process")
	add(112, 111, 420, "app")
	add(120, 1, 430, "app")
	add(122, 1, 450, "app")
	add(123, 1, 460, "log shipper")
	add(124, 1, 470, "nginx: worker process")
	add(125, 1, 250, "nginx: worker process")
	add(126, 101, 480, "app")
	add(127, 120, 490, "app")
	add(128, 129, 500, "app")
	add(129, 1, 9999, "reused")
	add(130, 131, 510, "app")
	add(132, 1, 475, "nginx: master process /usr/sbin/nginx")
	add(133, 1, 260, "nginx: master process /usr/sbin/nginx")
	return t
}

// sweepBoot is when sweepTree's machine booted.
var sweepBoot = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// TestChooseSweep: the sweep chooses the new generation only, whatever
// else holds the listening sockets.
func TestChooseSweep(t *testing.T) {
	id := func(pid int, start uint64) procs.Identity { return procs.Identity{PID: pid, Start: start} }
	pinned := []procs.Identity{id(120, 430), id(122, 1), id(126, 480), id(128, 500), id(130, 510)}
	// The upgrade signal was recorded at tick 390, just before the new
	// master started.
	live := generations{old: id(101, 300), self: 41, roots: []procs.Identity{id(110, 400)}, pinned: pinned, since: sweepBoot.Add(390 * tick)}
	// The new master stopped: its generation is known from the journal
	// and, for an orphaned worker, from its title and start time.
	gone := live
	gone.roots = nil
	unsigned := gone
	unsigned.since = time.Time{}
	for _, tc := range []struct {
		name   string
		holder int
		g      generations
		zombie bool // the new master has exited, unreaped
		want   bool
	}{
		{name: "pid-1", holder: 1, g: gone, want: false},
		{name: "service-manager-ancestor-of-old-master", holder: 50, g: gone, want: false},
		{name: "old-master", holder: 101, g: gone, want: false},
		{name: "old-worker", holder: 102, g: gone, want: false},
		{name: "old-grandchild", holder: 103, g: gone, want: false},
		{name: "pinned-but-below-old-master", holder: 126, g: gone, want: false},
		{name: "baton", holder: 41, g: gone, want: false},
		{name: "baton-ancestor", holder: 40, g: gone, want: false},
		{name: "unrelated", holder: 123, g: gone, want: false},
		{name: "unrelated-live-new-master", holder: 123, g: live, want: false},
		{name: "pinned-pid-other-start", holder: 122, g: gone, want: false},
		{name: "titled-worker-older-than-new-master", holder: 125, g: gone, want: false},
		{name: "titled-orphan-no-upgrade-signal-recorded", holder: 124, g: unsigned, want: false},
		{name: "master-titled-orphan-older-than-new-master", holder: 133, g: gone, want: false},
		{name: "master-titled-orphan-no-upgrade-signal-recorded", holder: 132, g: unsigned, want: false},
		{name: "pinned-parent-reused", holder: 128, g: gone, want: false},
		{name: "pinned-parent-unreadable", holder: 130, g: gone, want: false},
		{name: "pinned-ignored-without-journal", holder: 120, g: generations{old: live.old, self: 41}, want: false},
		{name: "new-master", holder: 110, g: live, want: true},
		{name: "new-worker", holder: 111, g: live, want: true},
		{name: "new-grandchild", holder: 112, g: live, want: true},
		{name: "worker-of-exiting-new-master", holder: 111, g: live, zombie: true, want: true},
		{name: "pinned-orphan", holder: 120, g: gone, want: true},
		{name: "child-of-pinned-orphan", holder: 127, g: gone, want: true},
		{name: "titled-orphan-of-gone-new-master", holder: 124, g: gone, want: true},
		{name: "titled-orphan-while-new-master-runs", holder: 124, g: live, want: true},
		// A worker forked just before its new master died, still under
		// the master's title (TestFaultNewMasterKilled/nginx left two
		// such serving the new version).
		{name: "master-titled-orphan-of-gone-new-master", holder: 132, g: gone, want: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tree := sweepTree()
			if len(tc.g.roots) == 0 {
				delete(tree, 110) // stopped
			}
			if tc.zombie {
				st := tree[110]
				st.State = 'Z'
				tree[110] = st
			}
			got := chooseSweep([]int{tc.holder}, tree, tc.g)
			if len(got) != 1 || got[0].id.PID != tc.holder {
				t.Fatalf("chooseSweep = %+v, want one verdict on %d", got, tc.holder)
			}
			if got[0].sweep != tc.want || got[0].why == "" {
				t.Errorf("sweep %d = %v (%s), want %v", tc.holder, got[0].sweep, got[0].why, tc.want)
			}
		})
	}
	t.Run("gone-holder", func(t *testing.T) {
		if got := chooseSweep([]int{999}, sweepTree(), live); len(got) != 0 {
			t.Errorf("a holder gone before its lineage was read got %+v", got)
		}
	})
}

// socketActivated makes f's world the one systemd's socket activation
// makes: PID 1 holds the listeners, and so does the old master's parent
// (a service manager that passed them), an unrelated process and a server
// each old worker runs without exec. Every new worker starts a child that
// leaves its process group (it outlives the new master's stop). It returns
// the processes that are not the new generation's.
func socketActivated(f *fakeSys) (outside []int, leftovers func() []int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	inert := func(ppid int, cmd string) int {
		pid := f.spawn(ppid, cmd, false)
		f.procs[pid].inert = true
		return pid
	}
	old := 101
	f.procs[1] = &fakeProc{stat: procs.Stat{PID: 1, State: 'S', Start: 1, Cmdline: []string{"/sbin/init"}}, inert: true, dead: make(chan struct{})}
	manager := inert(1, "socket-holder")
	f.procs[manager].stat.Start = 2 // started the old master
	f.procs[old].stat.PPID = manager
	outside = append(outside, 1, manager, inert(1, "log shipper"))
	for _, w := range f.workersOf(old) {
		outside = append(outside, inert(w, "app"))
	}
	var left []int
	f.onUpgrade = func(nu int) {
		for _, w := range f.workersOf(nu) {
			left = append(left, inert(w, "app"))
		}
	}
	return outside, func() []int {
		f.mu.Lock()
		defer f.mu.Unlock()
		return slices.Clone(left)
	}
}

// holdersAll is f's system where every live process holds the listeners.
func holdersAll(f *fakeSys) System {
	sys := f.system()
	sys.Holders = func([]uint64) ([]int, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		var out []int
		for pid, p := range f.procs {
			if !isClosed(p.dead) {
				out = append(out, pid)
			}
		}
		slices.Sort(out)
		return out, nil
	}
	return sys
}

// TestFakeSweepSocketActivation: a failed upgrade under socket activation
// rolls back and its sweep stops what is left of the new generation, but
// never PID 1, the service manager that passed the sockets, an unrelated
// holder or the servers the old workers run without exec.
func TestFakeSweepSocketActivation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeSys(t)
		f.neverWritesPid = true // the spawn times out: a rollback before any drain
		outside, leftovers := socketActivated(f)
		m, err := New(Options{Pidfile: f.pidfile, SpawnTimeout: 30 * time.Second, DrainTimeout: 30 * time.Second,
			StopTimeout: 10 * time.Second, Sys: holdersAll(f)})
		if err != nil {
			t.Fatal(err)
		}
		rep, err := m.Start(t.Context())
		if rep.State != RolledBack {
			t.Fatalf("start: %v, state %s; want rolled back", err, rep.State)
		}
		for _, pid := range outside {
			if got := f.signalsTo(pid); len(got) > 0 {
				t.Errorf("%d, outside the new generation, got %v", pid, got)
			}
			if _, err := m.sys.Info(pid); err != nil {
				t.Errorf("%d, outside the new generation, is gone: %v", pid, err)
			}
		}
		left := leftovers()
		if len(left) == 0 {
			t.Fatal("the new generation left nothing to sweep")
		}
		for _, pid := range left {
			if got := strings.Join(f.signalsTo(pid), ","); got != "QUIT,TERM,KILL" {
				t.Errorf("leftover %d of the new generation got %q, want QUIT,TERM,KILL", pid, got)
			}
		}
		var said bool
		for _, s := range rep.Steps {
			said = said || strings.Contains(s.Msg, "left alone") && strings.Contains(s.Msg, "1 (PID 1")
		}
		if !said {
			t.Errorf("no step names the holders left alone: %v", rep.Steps)
		}
		if j := rep.Journal; j == nil || !slices.ContainsFunc(j.NewWorkers, func(id procs.Identity) bool { return id.PID == left[0] }) {
			t.Errorf("the journal did not pin leftover %d as the new generation's", left[0])
		}
	})
}

// TestFakeJournalIdentityNeverSignalledAlone: a journal identity that
// runs but that nothing live confirms in its role gets no signal: a
// rollback's new master that is not the old master's child and that no
// pid file names, a commit's old master that no pid file names and that
// is not the new master's parent.
func TestFakeJournalIdentityNeverSignalledAlone(t *testing.T) {
	for _, verb := range []string{"rollback", "commit"} {
		t.Run(verb, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFakeSys(t)
				if _, err := fakeMachine(t, f).Start(t.Context()); err != nil {
					t.Fatalf("start: %v", err)
				}
				old, nu := 101, f.pidOf(t)
				// The new master left the old one's tree, and the pid
				// file that would confirm the journal's target is gone.
				f.mu.Lock()
				f.procs[nu].stat.PPID = 1
				f.mu.Unlock()
				target, gone := nu, f.pidfile
				if verb == "commit" {
					target, gone = old, f.pidfile+".oldbin"
				}
				if err := os.Remove(gone); err != nil {
					t.Fatal(err)
				}
				before := len(f.signalsTo(target))
				m := fakeMachine(t, f)
				var rep *Report
				if verb == "commit" {
					rep, _ = m.Commit(t.Context())
				} else {
					rep, _ = m.Rollback(t.Context())
				}
				if got := f.signalsTo(target); len(got) != before {
					t.Errorf("%s: journal's master %d got %v after the %s", verb, target, got[before:], verb)
				}
				if !strings.Contains(strings.Join(rep.Warnings, "\n"), strconv.Itoa(target)+"@") {
					t.Errorf("%s: no warning names %d: %q", verb, target, rep.Warnings)
				}
			})
		})
	}
}
