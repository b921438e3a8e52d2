package upgrade

import (
	"errors"
	"os"
	"slices"
	"testing"
	"testing/synctest"
	"time"
)

// killedAfterSignal leaves the world as an orchestrator SIGKILLed right
// after it sent USR2 leaves it: the journal says spawning with no new
// master seen, and the old master has not acted on the signal yet (it
// will, delay from now).
func killedAfterSignal(t *testing.T, delay time.Duration) (*fakeSys, int) {
	t.Helper()
	f := newFakeSys(t)
	f.upgradeDelay = delay
	old := f.pidOf(t)
	st, err := f.system().Info(old)
	if err != nil {
		t.Fatal(err)
	}
	j := &Journal{Flavor: "nginx", Pidfile: f.pidfile, Started: time.Now(), Old: st.Identity(), OldWorkers: 2, Workers: 2}
	if err := j.record(time.Now(), 1, EvSpawn, 0, "USR2"); err != nil {
		t.Fatal(err)
	}
	if err := WriteJournal(JournalPath(f.pidfile), j); err != nil {
		t.Fatal(err)
	}
	f.signal(old, 12) // SIGUSR2, handled after delay
	return f, old
}

// TestStatusWaitsForPendingSignal forces the interleaving of the flaky
// fault test: status runs while the USR2 the killed orchestrator sent is
// still pending. It used to classify the old master serving alone as
// rolled-back, naming no new master, while a moment later the pid file
// named the live new master; status must report what the signal leads
// to, and name the new master.
func TestStatusWaitsForPendingSignal(t *testing.T) {
	for _, tc := range []struct {
		name  string
		delay time.Duration
	}{
		{name: "acted-on-at-once", delay: time.Millisecond},
		{name: "acted-on-late", delay: 3 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f, old := killedAfterSignal(t, tc.delay)
				rep, err := fakeMachine(t, f).Status(t.Context())
				if err != nil {
					t.Fatalf("status: %v", err)
				}
				nu := f.pidOf(t)
				if nu == old {
					t.Fatalf("the old master never acted on USR2")
				}
				if rep.State != Spawned {
					t.Errorf("state %s, want spawned (findings %q)", rep.State, rep.Findings)
				}
				if rep.New == nil || rep.New.ID.PID != nu {
					t.Errorf("status names new master %+v; the pid file names %d", rep.New, nu)
				}
				if rep.Old == nil || rep.Old.ID.PID != old {
					t.Errorf("status names old master %+v, want %d", rep.Old, old)
				}
			})
		})
	}
}

// TestRollbackWaitsForPendingSignal: a rollback right after the killed
// orchestrator's USR2 used to find "rolled-back" and refuse (exit 2) while
// the new master was about to start; it must stop the new master.
func TestRollbackWaitsForPendingSignal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f, old := killedAfterSignal(t, time.Second)
		rep, err := fakeMachine(t, f).Rollback(t.Context())
		if err != nil {
			t.Fatalf("rollback: %v (findings %q)", err, rep.Findings)
		}
		if rep.State != RolledBack || f.pidOf(t) != old {
			t.Fatalf("state %s, pid file names %d, want rolled-back to %d", rep.State, f.pidOf(t), old)
		}
		if rep.Journal.New.PID == 0 || len(f.signalsTo(rep.Journal.New.PID)) == 0 {
			t.Errorf("the new master %d was not stopped", rep.Journal.New.PID)
		}
	})
}

// TestPendingSignalExpires: a signal the old master never acts on (or a
// new master that came and went) leaves it serving alone: rolled back,
// once UpgradePending has passed, not spawning for ever.
func TestPendingSignalExpires(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f, old := killedAfterSignal(t, time.Hour)
		start := time.Now()
		rep, err := fakeMachine(t, f).Status(t.Context())
		if err != nil {
			t.Fatalf("status: %v", err)
		}
		if rep.State != RolledBack || rep.Old == nil || rep.Old.ID.PID != old || rep.New != nil {
			t.Errorf("state %s old %+v new %+v, want rolled-back to %d", rep.State, rep.Old, rep.New, old)
		}
		if d := time.Since(start); d < UpgradePending-time.Second || d > UpgradePending+time.Second {
			t.Errorf("status took %v, want about UpgradePending (%v)", d, UpgradePending)
		}
	})
}

// TestRefusedVerbLeavesJournal: a refused invocation never rewrites the
// journal (a wrong --flavor used to reconcile it to "down").
func TestRefusedVerbLeavesJournal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeSys(t)
		if _, err := fakeMachine(t, f).Start(t.Context()); err != nil {
			t.Fatalf("start: %v", err)
		}
		before, err := os.ReadFile(JournalPath(f.pidfile))
		if err != nil {
			t.Fatal(err)
		}
		m, err := New(Options{Pidfile: f.pidfile, Flavor: "unicorn", Sys: f.system()})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.Start(t.Context()); !errors.Is(err, ErrNotRunning) && !errors.Is(err, ErrUpgradePending) {
			t.Fatalf("start with the wrong flavor: %v, want a refusal", err)
		}
		after, _ := os.ReadFile(JournalPath(f.pidfile))
		if string(after) != string(before) {
			t.Errorf("a refused start rewrote the journal:\nbefore %s\nafter %s", before, after)
		}
	})
}

// pfForkNoExec is the kernel's PF_FORKNOEXEC, as procs.Stat.Flags holds it.
const pfForkNoExec = 0x40

// TestFreshWorkerIsNoNewMaster: a worker the master has just forked still
// shows the master's title until it execs or retitles itself (a baton
// worker before its trampoline, a gunicorn worker before setproctitle).
// `upgrade start` at that moment used to refuse with exit 3, "an upgrade is
// pending: master N has a new master starting ([W])", naming that worker.
func TestFreshWorkerIsNoNewMaster(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeSys(t)
		old := f.pidOf(t)
		// One worker died and the master is forking its replacement.
		f.kill(f.workersOf(old)[0])
		fresh := f.spawn(old, "nginx: master process /bin/true", true)
		if !f.procs[fresh].stat.Forked() {
			t.Fatal("the fake's worker is not Forked")
		}
		rep, err := fakeMachine(t, f).Status(t.Context())
		if err != nil {
			t.Fatalf("status: %v", err)
		}
		if rep.New != nil || rep.Old == nil || len(rep.Old.ChildMasters) != 0 || !slices.Contains(rep.Old.Workers, fresh) {
			t.Fatalf("status: new %+v old %+v; want %d among the old master's workers and no new master", rep.New, rep.Old, fresh)
		}
		if _, err := fakeMachine(t, f).Start(t.Context()); err != nil {
			t.Fatalf("start with a fresh worker: %v", err)
		}
		if nu := f.pidOf(t); nu == old || nu == fresh {
			t.Errorf("pid file names %d after start; old %d, fresh worker %d", nu, old, fresh)
		}
	})
}
