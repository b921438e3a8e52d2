package upgrade

import (
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/procs"
	"github.com/batonhq/baton/upgrade/statusfile"
)

func mo(pid, ppid, workers int) *MasterObs {
	m := &MasterObs{ID: procs.Identity{PID: pid, Start: uint64(pid) * 10}, PPID: ppid}
	for i := range workers {
		m.Workers = append(m.Workers, pid+1+i)
	}
	return m
}

func file(path string, m *MasterObs) PidObs {
	if m == nil {
		return PidObs{Path: path}
	}
	return PidObs{Path: path, Exists: true, PID: m.ID.PID, Master: m}
}

func TestClassify(t *testing.T) {
	old, nu := mo(100, 1, 2), mo(200, 100, 2)
	parked := mo(100, 1, 0)
	nuStarting := mo(200, 100, 0)
	oldStarting := mo(100, 1, 2)
	oldStarting.ChildMasters = []int{200}
	journal := func(s State) *JournalSummary {
		return &JournalSummary{State: s, Old: old.ID, New: nu.ID}
	}
	stale := PidObs{Path: "app.pid", Exists: true, PID: 300}
	t0 := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	// sent: the journal recorded USR2 to old, ago before the observation,
	// and has seen no new master.
	sent := func(ago time.Duration) *JournalSummary {
		return &JournalSummary{State: Spawning, Old: old.ID, Updated: t0.Add(-ago)}
	}
	for _, tc := range []struct {
		name    string
		o       Observation
		want    State
		finding string
	}{
		{name: "nothing", o: Observation{}, want: Down},
		{name: "stale-pidfile", o: Observation{Main: stale}, want: Down, finding: "not running"},
		{name: "garbage-pidfile", o: Observation{Main: PidObs{Path: "app.pid", Exists: true, Err: "malformed"}}, want: Down, finding: "malformed"},
		{name: "one-master", o: Observation{Main: file("app.pid", old)}, want: Idle},
		{name: "one-master-pending-child", o: Observation{Main: file("app.pid", oldStarting)}, want: Spawning},
		{name: "nginx-renamed-new-not-written", o: Observation{Aside: file("app.pid.oldbin", oldStarting)}, want: Spawning},
		{name: "new-starting", o: Observation{Main: file("app.pid", nuStarting), Aside: file("app.pid.oldbin", old)}, want: Spawning},
		{name: "spawned", o: Observation{Main: file("app.pid", nu), Aside: file("app.pid.oldbin", old)}, want: Spawned},
		{name: "draining", o: Observation{Main: file("app.pid", nu), Aside: file("app.pid.oldbin", old), Journal: journal(Draining)}, want: Draining},
		{name: "drained", o: Observation{Main: file("app.pid", nu), Aside: file("app.pid.oldbin", parked)}, want: Drained},
		{name: "drained-with-floor", o: Observation{DrainFloor: 1, Main: file("app.pid", nu), Aside: file("app.pid.oldbin", mo(100, 1, 1))}, want: Drained},
		{name: "parked-with-workers-by-journal", o: Observation{Main: file("app.pid", nu), Aside: file("app.pid.oldbin", old), Journal: journal(Drained)}, want: Drained},
		{name: "committing", o: Observation{Main: file("app.pid", nu), Aside: file("app.pid.oldbin", parked), Journal: journal(Committing)}, want: Committing},
		{name: "committed", o: Observation{Main: file("app.pid", nu), Journal: journal(Committing)}, want: Committed},
		{name: "rolled-back-by-master", o: Observation{Main: file("app.pid", old), Journal: journal(Drained)}, want: RolledBack, finding: "is gone"},
		{name: "new-died-old-parked-no-restore", o: Observation{Main: PidObs{Path: "app.pid", Exists: true, PID: 200}, Aside: file("app.pid.oldbin", parked), Journal: journal(Drained)}, want: Inconsistent, finding: "parked"},
		{name: "new-died-old-parked-restored", o: Observation{Main: file("app.pid", parked), Journal: journal(Drained)}, want: Inconsistent, finding: "no workers"},
		{name: "rolling-back", o: Observation{Aside: file("app.pid.oldbin", old), Journal: journal(RollingBack)}, want: RollingBack},
		{name: "unrelated-masters", o: Observation{Main: file("app.pid", mo(200, 1, 2)), Aside: file("app.pid.oldbin", old)}, want: Inconsistent, finding: "not the parent"},
		{name: "same-pid-twice", o: Observation{Main: file("app.pid", old), Aside: file("app.pid.oldbin", old)}, want: Inconsistent},
		{name: "nobody-serves", o: Observation{Main: file("app.pid", nuStarting), Aside: file("app.pid.oldbin", parked)}, want: Inconsistent, finding: "no workers serve"},
		{name: "changed-behind-back", o: Observation{Main: file("app.pid", mo(500, 1, 2)), Journal: journal(Drained)}, want: Idle, finding: "behind baton's back"},
		{name: "all-dead-mid-upgrade", o: Observation{Journal: journal(Spawned)}, want: Inconsistent, finding: "no master runs"},
		{name: "gunicorn-spawned", o: Observation{AsideHoldsNew: true, Main: file("app.pid", old), Aside: file("app.pid.2", nu)}, want: Spawned},
		{name: "gunicorn-drained", o: Observation{AsideHoldsNew: true, DrainFloor: 1, Main: file("app.pid", mo(100, 1, 1)), Aside: file("app.pid.2", nu)}, want: Drained},
		{name: "gunicorn-promoting", o: Observation{AsideHoldsNew: true, Aside: file("app.pid.2", mo(200, 1, 2)), Journal: journal(Committing)}, want: Committing},
		{name: "gunicorn-committed", o: Observation{AsideHoldsNew: true, Main: file("app.pid", mo(200, 1, 2)), Journal: journal(Committing)}, want: Committed},
		{name: "baton-not-ready", o: Observation{Main: file("app.pid", func() *MasterObs { m := mo(200, 100, 2); m.Status = &statusfile.Master{Ready: false}; return m }()), Aside: file("app.pid.oldbin", old)}, want: Spawning},
		{name: "signal-pending", o: Observation{Main: file("app.pid", old), Journal: sent(time.Second)}, want: Spawning, finding: "no new master has appeared yet"},
		{name: "signal-pending-renamed-not-forked", o: Observation{Aside: file("app.pid.oldbin", old), Journal: sent(time.Second)}, want: Spawning, finding: "no new master has appeared yet"},
		{name: "signal-expired-came-and-went", o: Observation{Main: file("app.pid", old), Journal: sent(UpgradePending)}, want: RolledBack},
		{name: "child-named-as-new", o: Observation{Main: file("app.pid", oldStarting), Child: nuStarting}, want: Spawning},
		{name: "old-exiting-after-commit", o: Observation{Main: file("app.pid", nu), Journal: journal(Committing), OldRuns: true}, want: Committing, finding: "still exiting"},
		{name: "baton-pending", o: Observation{Main: file("app.pid", func() *MasterObs { m := mo(100, 1, 2); m.Status = &statusfile.Master{UpgradePending: true}; return m }())}, want: Spawning},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.o.At = t0
			v := Classify(tc.o)
			if v.State != tc.want {
				t.Fatalf("state %s, want %s (findings %q)", v.State, tc.want, v.Findings)
			}
			if tc.finding != "" && !strings.Contains(strings.Join(v.Findings, "\n"), tc.finding) {
				t.Errorf("findings %q do not mention %q", v.Findings, tc.finding)
			}
			if v.State == Inconsistent && v.Advice == "" {
				t.Error("inconsistent without advice")
			}
			checkVerdict(t, tc.o, v)
			if tc.o.Child != nil && v.New != tc.o.Child {
				t.Errorf("the new master starting as the old one's child is not named as new")
			}
		})
	}
}

// checkVerdict holds the properties every verdict must have.
func checkVerdict(t *testing.T, o Observation, v Verdict) {
	t.Helper()
	if !v.State.Valid() {
		t.Fatalf("invalid state %d", v.State)
	}
	liveIn := func(m *MasterObs) bool {
		return m != nil && (m == o.Main.Master || m == o.Aside.Master || m == o.Child)
	}
	if v.Old != nil && !liveIn(v.Old) || v.New != nil && !liveIn(v.New) {
		t.Fatalf("verdict names a master the observation does not hold")
	}
	live := o.Main.Master != nil || o.Aside.Master != nil
	switch v.State {
	case Down:
		if live {
			t.Fatalf("down with a live master")
		}
	case Spawned, Draining, Drained:
		if v.Old == nil || v.New == nil || v.New.PPID != v.Old.ID.PID {
			t.Fatalf("%s without a parent and child pair", v.State)
		}
		if len(v.New.Workers) == 0 {
			t.Fatalf("%s with no new workers", v.State)
		}
	case Idle, RolledBack:
		if v.Old == nil || v.New != nil {
			t.Fatalf("%s without exactly the old master", v.State)
		}
	case Committed:
		if v.New == nil || v.Old != nil {
			t.Fatalf("committed without exactly the new master")
		}
	case Inconsistent:
		if v.Advice == "" {
			t.Fatalf("inconsistent without advice")
		}
	}
	if !live && v.State != Down && v.State != Inconsistent {
		t.Fatalf("%s with no live master", v.State)
	}
}

// FuzzClassify builds observations from bytes: never a panic, always a
// valid state consistent with the input.
func FuzzClassify(f *testing.F) {
	// Seeds: one master; a parent/child pair; a drained pair; gunicorn
	// layout with a journal; the same pid twice.
	f.Add([]byte{1, 100, 2, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{3, 200, 2, 100, 100, 0, 1, 0, 2})
	f.Add([]byte{3, 200, 2, 100, 100, 0, 0, 0, 5})
	f.Add([]byte{7, 200, 2, 100, 100, 1, 1, 1, 7})
	f.Add([]byte{3, 100, 2, 100, 100, 2, 1, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		at := func(i int) int {
			if i < len(b) {
				return int(b[i])
			}
			return 0
		}
		flags := at(0)
		mk := func(pid, ppid, workers int, child bool) *MasterObs {
			m := &MasterObs{ID: procs.Identity{PID: pid, Start: uint64(pid)}, PPID: ppid}
			for i := range workers % 4 {
				m.Workers = append(m.Workers, 1000+pid+i)
			}
			if child {
				m.ChildMasters = []int{pid + 1}
			}
			if flags&64 != 0 {
				m.Status = &statusfile.Master{Ready: flags&128 != 0, UpgradePending: flags&32 != 0}
			}
			return m
		}
		var o Observation
		o.AsideHoldsNew = flags&8 != 0
		o.DrainFloor = at(5) % 2
		if flags&1 != 0 {
			o.Main = file("app.pid", mk(at(1), at(3), at(2), flags&16 != 0))
		} else if flags&4 != 0 {
			o.Main = PidObs{Path: "app.pid", Exists: true, PID: at(1)}
		}
		if flags&2 != 0 {
			o.Aside = file("app.pid.oldbin", mk(at(4), 1, at(6), false))
		}
		if len(b) > 8 {
			var j JournalSummary
			j.State = State(at(8) % int(numStates))
			j.Old = procs.Identity{PID: at(4), Start: uint64(at(4))}
			j.New = procs.Identity{PID: at(1), Start: uint64(at(1))}
			if len(b) > 10 {
				j.New.PID = int(binary.LittleEndian.Uint16(b[9:11]))
			}
			o.Journal = &j
		}
		v := Classify(o)
		checkVerdict(t, o, v)
		if v2 := Classify(o); v2.State != v.State {
			t.Fatalf("not deterministic: %s then %s", v.State, v2.State)
		}
	})
}
