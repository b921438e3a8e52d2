package upgrade

import (
	"context"
	"slices"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"
	"time"
)

// A unicorn-like master in the fake world (unicorn 6.0 http_server.rb,
// gunicorn 20.1 arbiter.py alike): it keeps a target worker count that
// WINCH zeroes and TTIN/TTOU move by one, counts a worker it told to stop
// until the worker exits, and spawns or stops workers to match the target
// (maintain_worker_count, manage_workers).

func newCountingFakeSys(t *testing.T) *fakeSys {
	f := &fakeSys{t: t, pidfile: t.TempDir() + "/unicorn.pid", next: 100, procs: map[int]*fakeProc{},
		target: map[int]int{}, busy: map[int]time.Duration{}, exiting: map[int]bool{}}
	f.writePid(f.pidfile, f.spawnMaster(1))
	return f
}

// spawnCounting starts a unicorn-like master with two workers; callers
// hold mu or run before the test starts.
func (f *fakeSys) spawnCounting(ppid int) int {
	pid := f.spawn(ppid, "unicorn master -c /srv/app/unicorn.rb", false)
	f.target[pid] = 2
	f.maintain(pid)
	return pid
}

// countingSignal handles WINCH, TTIN and TTOU; callers hold mu.
func (f *fakeSys) countingSignal(pid int, sig syscall.Signal) {
	switch sig {
	case syscall.SIGWINCH:
		f.target[pid] = 0
		for _, w := range f.workersOf(pid) {
			f.stopWorker(pid, w)
		}
	case syscall.SIGTTIN:
		if f.ttinDelay > 0 {
			time.AfterFunc(f.ttinDelay, func() {
				f.mu.Lock()
				defer f.mu.Unlock()
				f.target[pid]++
				f.maintain(pid)
			})
			return
		}
		f.target[pid]++
	case syscall.SIGTTOU:
		if f.target[pid] > 0 {
			f.target[pid]--
		}
	}
	f.maintain(pid)
}

// maintain spawns workers while fewer than the target run (those stopping
// included) and stops the newest beyond it; callers hold mu.
func (f *fakeSys) maintain(pid int) {
	if p := f.procs[pid]; p == nil || isClosed(p.dead) {
		return
	}
	ws := f.workersOf(pid)
	for n := len(ws); n < f.target[pid]; n++ {
		f.spawn(pid, "unicorn worker["+string(rune('0'+n))+"] -c /srv/app/unicorn.rb", true)
	}
	var serving []int
	for _, w := range ws {
		if !f.exiting[w] {
			serving = append(serving, w)
		}
	}
	slices.Sort(serving)
	for len(serving) > f.target[pid] {
		f.stopWorker(pid, serving[len(serving)-1])
		serving = serving[:len(serving)-1]
	}
}

// stopWorker tells worker w of master pid to stop: it exits at once, or
// after its request when it is busy, and the master then maintains its
// count; callers hold mu.
func (f *fakeSys) stopWorker(pid, w int) {
	if f.exiting[w] {
		return
	}
	f.exiting[w] = true
	d, busy := f.busy[w]
	if !busy {
		f.kill(w)
		return
	}
	go func() {
		time.Sleep(d)
		f.mu.Lock()
		defer f.mu.Unlock()
		f.kill(w)
		f.maintain(pid)
	}()
}

// TestFakeRollbackAfterKilledDrain: the orchestrator dies right after WINCH
// while an old worker finishes a 3-second request. The master counts that
// worker until it exits and then replaces it up to its target, so a
// rollback that adds workers with TTIN must not count it as missing: the
// old master ends with the two workers it had, not three.
func TestFakeRollbackAfterKilledDrain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newCountingFakeSys(t)
		old := f.pidOf(t)
		f.mu.Lock()
		f.busy[f.workersOf(old)[0]] = 3 * time.Second
		f.mu.Unlock()
		ctx, kill := context.WithCancel(t.Context())
		defer kill()
		m, err := New(Options{Pidfile: f.pidfile, SpawnTimeout: 30 * time.Second, DrainTimeout: 30 * time.Second,
			VerifyFor: 2 * time.Second, StopTimeout: 10 * time.Second, NoAutoRollback: true, Sys: f.system(),
			Progress: func(s Step) {
				if s.Name == "drain" && strings.HasPrefix(s.Msg, "sent") {
					kill() // the orchestrator stops acting right after the drain signal
				}
			}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.Start(ctx); err == nil {
			t.Fatal("start went on after its context was cancelled while draining")
		}
		f.mu.Lock()
		left := len(f.workersOf(old))
		f.mu.Unlock()
		if left != 1 {
			t.Fatalf("after the interrupted drain the old master has %d workers, want the busy one", left)
		}
		rep, err := fakeMachine(t, f).Rollback(t.Context())
		if err != nil {
			t.Fatalf("rollback: %v", err)
		}
		if rep.State != RolledBack {
			t.Errorf("state %s", rep.State)
		}
		// Long after the busy worker's request: the count is the master's.
		time.Sleep(time.Minute)
		synctest.Wait()
		f.mu.Lock()
		defer f.mu.Unlock()
		if got, target := len(f.workersOf(old)), f.target[old]; got != 2 || target != 2 {
			t.Errorf("old master %d has %d workers (target %d) after the rollback, want 2 as before the upgrade; signals %v", old, got, target, f.log)
		}
	})
}

// TestFakeRespawnNeverOvershoots: TTIN adds a worker each, so a rollback
// that re-sends one that is merely slow, or that does not know of one a
// killed orchestrator sent, leaves the old master with too many workers
// (seen with gunicorn on a loaded machine: three instead of two); and one
// the journal counts but a killed orchestrator never sent is not waited
// for to the spawn timeout.
func TestFakeRespawnNeverOvershoots(t *testing.T) {
	for _, tc := range []struct {
		name   string
		delay  time.Duration // TTIN takes effect this late
		orphan bool          // a killed rollback journaled one TTIN before
		unsent bool          // ... and was killed before it sent it
	}{
		{name: "slow-master", delay: 1500 * time.Millisecond},
		{name: "resumed-after-a-killed-rollback", delay: 2500 * time.Millisecond, orphan: true},
		// It waited 30 s for the TTIN the journal counted and exited 4
		// (TestFaultOrchestratorKilled/rolling-back/rollback/gunicorn).
		{name: "resumed-after-a-rollback-killed-before-its-signal", orphan: true, unsent: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newCountingFakeSys(t)
				old := f.pidOf(t)
				if _, err := fakeMachine(t, f).Start(t.Context()); err != nil {
					t.Fatalf("start: %v", err)
				}
				f.ttinDelay = tc.delay
				if tc.orphan {
					j, err := ReadJournal(JournalPath(f.pidfile))
					if err != nil {
						t.Fatal(err)
					}
					if err := j.record(time.Now(), 1, EvRollback, 0, "killed"); err != nil {
						t.Fatal(err)
					}
					j.Respawned, j.RespawnBase = 1, 0
					if err := WriteJournal(JournalPath(f.pidfile), j); err != nil {
						t.Fatal(err)
					}
					if !tc.unsent {
						f.signal(old, syscall.SIGTTIN)
					}
				}
				rep, err := fakeMachine(t, f).Rollback(t.Context())
				if err != nil || rep.State != RolledBack {
					t.Fatalf("rollback: %v, state %s", err, rep.State)
				}
				time.Sleep(time.Minute)
				synctest.Wait()
				f.mu.Lock()
				defer f.mu.Unlock()
				if got, target := len(f.workersOf(old)), f.target[old]; got != 2 || target != 2 {
					t.Errorf("old master has %d workers (target %d) after the rollback, want 2; signals %v", got, target, f.log)
				}
			})
		})
	}
}
