package upgrade

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/procs"
)

// probeMachine is a Machine for spawnWait.probe: what it looks up beyond
// its observation is running, the processes that run (by pid, with the start
// times mo gives them), and its journal goes to a temporary directory.
func probeMachine(t *testing.T, flavor string, running ...*MasterObs) *Machine {
	t.Helper()
	fl, err := LookupFlavor(flavor)
	if err != nil {
		t.Fatal(err)
	}
	stats := map[int]procs.Stat{}
	for _, r := range running {
		stats[r.ID.PID] = procs.Stat{PID: r.ID.PID, PPID: r.PPID, Start: r.ID.Start, State: 'S'}
	}
	sys := System{
		Info: func(pid int) (procs.Stat, error) {
			if st, ok := stats[pid]; ok {
				return st, nil
			}
			return procs.Stat{}, fmt.Errorf("pid %d: %w", pid, procs.ErrGone)
		},
		Open: func(id procs.Identity) (Process, error) {
			if st, ok := stats[id.PID]; ok && st.Start == id.Start {
				return &fakeHandle{id: id, p: &fakeProc{stat: st, dead: make(chan struct{})}}, nil
			}
			return nil, procs.ErrGone
		},
		Now: time.Now,
	}
	m := &Machine{
		opts:   Options{Pidfile: filepath.Join(t.TempDir(), "app.pid")},
		sys:    sys,
		flavor: fl,
		rep:    &Report{},
		t0:     time.Now(),
	}
	m.j = &Journal{Flavor: fl.Name, Pidfile: m.opts.Pidfile}
	return m
}

// TestSpawnProbe drives one look of spawn's wait: each row is an
// observation and the world around it, and what the probe must conclude.
func TestSpawnProbe(t *testing.T) {
	lis := []procs.Listener{{Inode: 7, Network: "tcp", Addr: "127.0.0.1:80"}}
	withLis := func(m *MasterObs) *MasterObs { m.Listeners = lis; return m }
	old := withLis(mo(100, 1, 2))
	starting := withLis(mo(100, 1, 2))
	starting.ChildMasters = []int{200}
	nu := withLis(mo(200, 100, 2))
	short := withLis(mo(200, 100, 1))
	deaf := mo(200, 100, 2) // holds none of the old master's listeners
	orphan := withLis(mo(200, 1, 2))
	other := withLis(mo(300, 1, 2))
	for _, tc := range []struct {
		name    string
		flavor  string
		running []*MasterObs // the processes that run
		o       Observation
		seen    *MasterObs // the new master a previous look saw
		cands   []*MasterObs
		done    bool
		reason  string // in the reason, when not done
		err     string // in the error
		pinned  int    // the new master's pid the journal holds after the look
	}{
		{name: "old-died", flavor: "nginx", o: Observation{Aside: PidObs{Path: "app.pid.oldbin", Exists: true, PID: 100}}, err: "old master 100 died"},
		{name: "not-renamed-yet", flavor: "nginx", running: []*MasterObs{old}, o: Observation{Main: file("app.pid", old)}, reason: "not renamed yet"},
		{name: "baton-not-renamed-says-why", flavor: "baton", running: []*MasterObs{old}, o: Observation{Main: file("app.pid", old)}, reason: "ignores USR2"},
		{name: "aside-names-another", flavor: "nginx", running: []*MasterObs{old, other}, o: Observation{Aside: file("app.pid.oldbin", other)}, reason: "does not name the old master 100"},
		{name: "aside-names-another-old-gone", flavor: "nginx", running: []*MasterObs{other}, o: Observation{Aside: file("app.pid.oldbin", other)}, err: "died"},
		{name: "child-pinned-before-pidfile", flavor: "nginx", running: []*MasterObs{starting, nu}, o: Observation{Aside: file("app.pid.oldbin", starting)}, reason: "no new master in", pinned: 200},
		{name: "child-came-and-went", flavor: "nginx", running: []*MasterObs{old}, o: Observation{Aside: file("app.pid.oldbin", old)}, cands: []*MasterObs{nu}, err: "has no new master any more"},
		{name: "pidfile-between-rename-and-write", flavor: "nginx", running: []*MasterObs{old}, o: Observation{Main: PidObs{Path: "app.pid", Exists: true, PID: 100}, Aside: file("app.pid.oldbin", old)}, reason: "still names the old master"},
		{name: "pidfile-unusable", flavor: "nginx", running: []*MasterObs{old}, o: Observation{Main: PidObs{Path: "app.pid", Exists: true, Err: "malformed"}, Aside: file("app.pid.oldbin", old)}, reason: "malformed"},
		{name: "seen-new-master-died", flavor: "nginx", running: []*MasterObs{old}, o: Observation{Aside: file("app.pid.oldbin", old)}, seen: nu, err: "new master 200 died"},
		{name: "not-the-old-masters-child", flavor: "nginx", running: []*MasterObs{old, orphan}, o: Observation{Main: file("app.pid", orphan), Aside: file("app.pid.oldbin", old)}, err: "whose parent is 1"},
		{name: "workers-missing", flavor: "nginx", running: []*MasterObs{old, short}, o: Observation{Main: file("app.pid", short), Aside: file("app.pid.oldbin", old)}, reason: "1 of 2 workers", pinned: 200},
		{name: "listener-missing", flavor: "nginx", running: []*MasterObs{old, deaf}, o: Observation{Main: file("app.pid", deaf), Aside: file("app.pid.oldbin", old)}, reason: "inode 7", pinned: 200},
		{name: "baton-status-not-ready", flavor: "baton", running: []*MasterObs{old, nu}, o: Observation{Main: file("app.pid", nu), Aside: file("app.pid.oldbin", old)}, reason: "status does not say ready", pinned: 200},
		{name: "ready", flavor: "nginx", running: []*MasterObs{old, nu}, o: Observation{Main: file("app.pid", nu), Aside: file("app.pid.oldbin", old)}, done: true, pinned: 200},
		{name: "gunicorn-ready", flavor: "gunicorn", running: []*MasterObs{old, nu}, o: Observation{AsideHoldsNew: true, Main: file("app.pid", old), Aside: file("app.pid.2", nu)}, done: true, pinned: 200},
		{name: "gunicorn-old-died", flavor: "gunicorn", o: Observation{AsideHoldsNew: true, Main: PidObs{Path: "app.pid", Exists: true, PID: 100}}, err: "old master 100 died"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := probeMachine(t, tc.flavor, tc.running...)
			w := &spawnWait{m: m, old: old, want: 2, deadline: time.Now().Add(time.Minute)}
			if tc.seen != nil {
				w.seen = tc.seen.ID
			}
			for _, c := range tc.cands {
				w.cands = append(w.cands, c.ID)
			}
			done, reason, err := w.probe(t.Context(), tc.o)
			switch {
			case tc.err != "":
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("probe: (%v, %q, %v), want an error saying %q", done, reason, err, tc.err)
				}
			case err != nil:
				t.Fatalf("probe: %v", err)
			case done != tc.done:
				t.Fatalf("probe: done %v (%q), want %v", done, reason, tc.done)
			case !done && !strings.Contains(reason, tc.reason):
				t.Fatalf("probe: reason %q, want it to say %q", reason, tc.reason)
			}
			if done && (w.nu == nil || w.nu.ID != nu.ID) {
				t.Errorf("done with new master %v, want %v", w.nu, nu.ID)
			}
			if got := m.j.New.PID; got != tc.pinned {
				t.Errorf("journal's new master %d, want %d", got, tc.pinned)
			}
			if tc.pinned != 0 {
				j, err := ReadJournal(JournalPath(m.opts.Pidfile))
				if err != nil || j == nil || j.New.PID != tc.pinned {
					t.Errorf("journal on disk %+v (%v), want new master %d", j, err, tc.pinned)
				}
			}
		})
	}
}

// TestSpawnProbeTookBack: the pid file with its inode unchanged but its
// ctime moved since USR2, and no .oldbin of that inode, reads as "renamed
// away and back: the new master came and went". One look is not enough (it
// was wrong twice in CI, just before the rename came): the picture must
// hold for backConfirm with no new master below the old one.
func TestSpawnProbeTookBack(t *testing.T) {
	old := mo(100, 1, 2)
	starting := mo(100, 1, 2)
	starting.ChildMasters = []int{200}
	for _, tc := range []struct {
		name string
		obs  *MasterObs
		err  bool
	}{
		{name: "confirmed", obs: old, err: true},
		{name: "a-new-master-runs", obs: starting, err: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := probeMachine(t, "nginx", old)
			now := time.Now()
			m.sys.Now = func() time.Time { return now }
			pidfile := m.opts.Pidfile
			writeFileAtomic(pidfile, "100\n")
			before := stampOf(pidfile)
			time.Sleep(20 * time.Millisecond)
			// Renamed away and back: the inode stays, its ctime moves.
			if err := os.Rename(pidfile, pidfile+".oldbin"); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(pidfile+".oldbin", pidfile); err != nil {
				t.Fatal(err)
			}
			w := &spawnWait{m: m, old: old, want: 2, before: before, deadline: now.Add(time.Minute)}
			o := Observation{Main: file("app.pid", tc.obs)}
			if _, reason, err := w.probe(t.Context(), o); err != nil || !strings.Contains(reason, "confirming") {
				t.Fatalf("first look: %q, %v; want it to wait for confirmation", reason, err)
			}
			now = now.Add(backConfirm)
			_, reason, err := w.probe(t.Context(), o)
			if got := err != nil && strings.Contains(err.Error(), "took "+pidfile+" back"); got != tc.err {
				t.Fatalf("look after %v: %q, %v; want the new master taken for dead: %v", backConfirm, reason, err, tc.err)
			}
		})
	}
}
