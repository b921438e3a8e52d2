package upgrade

import (
	"context"
	"errors"
	"os"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

func TestStateNames(t *testing.T) {
	seen := map[string]bool{}
	for s := State(0); s < numStates; s++ {
		name := s.String()
		if name == "" || seen[name] {
			t.Errorf("state %d: name %q empty or repeated", s, name)
		}
		seen[name] = true
		b, err := s.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var back State
		if err := back.UnmarshalText(b); err != nil || back != s {
			t.Errorf("round trip %s: %v %v", s, back, err)
		}
	}
	if _, err := numStates.MarshalText(); err == nil {
		t.Error("an invalid state marshals")
	}
	var s State
	if err := s.UnmarshalText([]byte("nonsense")); err == nil {
		t.Error("an unknown name unmarshals")
	}
}

func TestTransitions(t *testing.T) {
	for _, tc := range []struct {
		name string
		from State
		ev   Event
		to   State // Inconsistent+1 … means illegal
		ok   bool
	}{
		{name: "start", from: Idle, ev: EvSpawn, to: Spawning, ok: true},
		{name: "start-after-commit", from: Committed, ev: EvSpawn, to: Spawning, ok: true},
		{name: "start-after-rollback", from: RolledBack, ev: EvSpawn, to: Spawning, ok: true},
		{name: "start-while-spawned", from: Spawned, ev: EvSpawn},
		{name: "spawned", from: Spawning, ev: EvSpawned, to: Spawned, ok: true},
		{name: "drain", from: Spawned, ev: EvDrain, to: Draining, ok: true},
		{name: "drained", from: Draining, ev: EvDrained, to: Drained, ok: true},
		{name: "commit-drained", from: Drained, ev: EvCommit, to: Committing, ok: true},
		{name: "commit-undrained", from: Spawned, ev: EvCommit, to: Committing, ok: true},
		{name: "commit-idle", from: Idle, ev: EvCommit},
		{name: "commit-spawning", from: Spawning, ev: EvCommit},
		{name: "commit-rolled-back", from: RolledBack, ev: EvCommit},
		{name: "committed", from: Committing, ev: EvCommitted, to: Committed, ok: true},
		{name: "rollback-spawning", from: Spawning, ev: EvRollback, to: RollingBack, ok: true},
		{name: "rollback-drained", from: Drained, ev: EvRollback, to: RollingBack, ok: true},
		{name: "rollback-inconsistent", from: Inconsistent, ev: EvRollback, to: RollingBack, ok: true},
		{name: "rollback-idle", from: Idle, ev: EvRollback},
		{name: "rollback-committed", from: Committed, ev: EvRollback},
		{name: "rolled-back", from: RollingBack, ev: EvRolledBack, to: RolledBack, ok: true},
		{name: "break-rollback", from: RollingBack, ev: EvBreak, to: Inconsistent, ok: true},
		{name: "break-idle", from: Idle, ev: EvBreak},
		{name: "down-anything", from: Down, ev: EvSpawn},
		{name: "reconcile-is-not-an-edge", from: Idle, ev: EvReconcile},
	} {
		t.Run(tc.name, func(t *testing.T) {
			to, err := Next(tc.from, tc.ev)
			if tc.ok {
				if err != nil || to != tc.to {
					t.Fatalf("Next(%s, %s) = %s, %v; want %s", tc.from, tc.ev, to, err, tc.to)
				}
				return
			}
			var te *TransitionError
			if !errors.As(err, &te) || !errors.Is(err, ErrIllegalTransition) || te.From != tc.from || te.Event != tc.ev {
				t.Fatalf("Next(%s, %s) = %s, %v; want a TransitionError", tc.from, tc.ev, to, err)
			}
			if to != tc.from {
				t.Errorf("an illegal event moved %s to %s", tc.from, to)
			}
		})
	}
}

// TestTableTotal: every edge leads to a valid state, Settled states are
// reachable only through their terminal event, and every non-terminal state
// of an upgrade can be rolled back.
func TestTableTotal(t *testing.T) {
	for e, to := range transitions {
		if !e.from.Valid() || !to.Valid() || e.ev >= numEvents {
			t.Errorf("edge %v → %v is out of range", e, to)
		}
		if to == Committed && e.ev != EvCommitted || to == RolledBack && e.ev != EvRolledBack {
			t.Errorf("%s reached by %s", to, e.ev)
		}
	}
	for _, s := range []State{Spawning, Spawned, Draining, Drained, Committing, RollingBack, Inconsistent} {
		if _, err := Next(s, EvRollback); err != nil {
			t.Errorf("%s cannot roll back", s)
		}
	}
}

func TestJournalRecord(t *testing.T) {
	j := &Journal{}
	now := time.Unix(1e9, 0)
	for _, ev := range []Event{EvSpawn, EvSpawned, EvDrain, EvDrained, EvCommit, EvCommitted} {
		if err := j.record(now, 1, ev, 0, ""); err != nil {
			t.Fatal(err)
		}
	}
	if j.State != Committed || len(j.Transitions) != 6 {
		t.Fatalf("journal %s with %d transitions", j.State, len(j.Transitions))
	}
	if err := j.record(now, 1, EvRollback, 0, ""); !errors.Is(err, ErrIllegalTransition) {
		t.Errorf("rollback after commit: %v", err)
	}
	if err := j.record(now, 1, EvReconcile, Drained, "found"); err != nil || j.State != Drained {
		t.Errorf("reconcile: %v, %s", err, j.State)
	}
	path := t.TempDir() + "/app.pid.upgrade.json"
	if err := WriteJournal(path, j); err != nil {
		t.Fatal(err)
	}
	back, err := ReadJournal(path)
	if err != nil || back.State != Drained || len(back.Transitions) != 7 || back.Transitions[6].Event != EvReconcile {
		t.Fatalf("read back %+v, %v", back, err)
	}
	if j, err := ReadJournal(path + ".missing"); j != nil || err != nil {
		t.Errorf("missing journal: %v, %v", j, err)
	}
}

func TestLock(t *testing.T) {
	path := t.TempDir() + "/app.pid.upgrade.lock"
	l, err := AcquireLock(path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = AcquireLock(path)
	var le *LockError
	if !errors.As(err, &le) || !errors.Is(err, ErrLocked) || le.PID == 0 {
		t.Fatalf("second lock: %v", err)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	if err := l.Release(); err != nil {
		t.Errorf("second release: %v", err)
	}
	l2, err := AcquireLock(path)
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	l2.Release()

	// A symlink at the lock path is refused, and its target left alone.
	target := t.TempDir() + "/precious"
	os.WriteFile(target, []byte("keep me"), 0o644)
	link := t.TempDir() + "/app.pid.upgrade.lock"
	os.Symlink(target, link)
	if l, err := AcquireLock(link); err == nil {
		l.Release()
		t.Error("locked through a symlink")
	}
	if b, _ := os.ReadFile(target); string(b) != "keep me" {
		t.Errorf("symlink target now holds %q", b)
	}
}

// TestWaitFor runs the timeout logic in a synctest bubble: fake time, no
// real sleeping.
func TestWaitFor(t *testing.T) {
	t.Run("times-out-with-reason", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			start := time.Now()
			calls := 0
			err := waitFor(context.Background(), 30*time.Second, nil, func() (bool, string, error) {
				calls++
				return false, "still waiting", nil
			})
			if !errors.Is(err, ErrTimeout) {
				t.Fatalf("err %v", err)
			}
			if got := time.Since(start); got != 30*time.Second {
				t.Errorf("timed out after %v", got)
			}
			// Backoff: 5ms doubling to 200ms, then every 200ms.
			if calls < 100 || calls > 200 {
				t.Errorf("%d polls in 30s", calls)
			}
		})
	})
	t.Run("woken-by-event", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			wake := make(chan struct{}, 1)
			var ready atomic.Bool
			go func() {
				time.Sleep(time.Second)
				ready.Store(true)
				wake <- struct{}{}
			}()
			start := time.Now()
			err := waitFor(context.Background(), time.Minute, wake, func() (bool, string, error) {
				return ready.Load(), "not ready", nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if got := time.Since(start); got != time.Second {
				t.Errorf("noticed after %v, want at once on the event", got)
			}
		})
	})
	// Events faster than the looks: a look that used d of CPU is not
	// followed by the next one before d has passed, so the looks take at
	// most half a CPU; a quick look, or a long one that was mostly waiting
	// for a CPU (starved), is repeated at once.
	for _, tc := range []struct {
		name      string
		look, gap time.Duration
		starved   bool
	}{
		{"slow-looks-leave-as-long-idle", 10 * time.Millisecond, 10 * time.Millisecond, false},
		{"quick-looks-at-once", idleMin / 2, 0, false},
		{"starved-looks-at-once", 10 * time.Millisecond, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				// The looks below sleep: their fake time stands for CPU
				// time, or for none when starved.
				start := time.Now()
				defer func(f func() time.Duration) { cpuTime = f }(cpuTime)
				cpuTime = func() time.Duration {
					if tc.starved {
						return 0
					}
					return time.Since(start)
				}
				wake := make(chan struct{}, 1)
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				go func() { // an event whenever the last was taken
					for ctx.Err() == nil {
						select {
						case wake <- struct{}{}:
						case <-ctx.Done():
						}
					}
				}()
				var starts, ends []time.Time
				err := waitFor(ctx, time.Minute, wake, func() (bool, string, error) {
					starts = append(starts, time.Now())
					time.Sleep(tc.look)
					ends = append(ends, time.Now())
					return len(starts) == 20, "not yet", nil
				})
				if err != nil {
					t.Fatal(err)
				}
				for i := 1; i < len(starts); i++ {
					if gap := starts[i].Sub(ends[i-1]); gap != tc.gap {
						t.Fatalf("look %d began %v after look %d ended, want %v", i, gap, i-1, tc.gap)
					}
				}
			})
		})
	}
	t.Run("cancelled", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(time.Second, cancel)
			err := waitFor(ctx, time.Minute, nil, func() (bool, string, error) { return false, "x", nil })
			if !errors.Is(err, context.Canceled) || errors.Is(err, ErrTimeout) {
				t.Fatalf("err %v", err)
			}
		})
	})
	t.Run("error-stops", func(t *testing.T) {
		boom := errors.New("boom")
		err := waitFor(context.Background(), time.Minute, nil, func() (bool, string, error) { return false, "", boom })
		if !errors.Is(err, boom) {
			t.Fatalf("err %v", err)
		}
	})
}
