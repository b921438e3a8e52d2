package upgrade

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// TestInterrupt: the context of a verb is an instruction to abort safely
// (SIGINT, SIGTERM or SIGHUP in the CLI), and Options.Hard (a second
// interrupt) stops at once.
func TestInterrupt(t *testing.T) {
	for _, tc := range []struct {
		name     string
		setup    func(f *fakeSys)
		cancelAt time.Duration // after Start begins; 0: before it
		hardAt   time.Duration // 0: never
		want     error
		state    State
		advice   string
		signals  string // to the old master
	}{
		// Before the upgrade signal: nothing is sent.
		{name: "before-usr2", want: ErrInterrupted, state: Idle, signals: ""},
		// While the new master starts (it writes its pid file late): roll
		// back, the new master stopped, exit 1.
		{name: "spawning", setup: func(f *fakeSys) { f.upgradeDelay = 2 * time.Second }, cancelAt: time.Second,
			want: ErrRolledBack, state: RolledBack, signals: "USR2"},
		// During verify: roll back, the old workers return.
		{name: "verifying", cancelAt: time.Second, want: ErrRolledBack, state: RolledBack, signals: "USR2,WINCH,HUP"},
		// A second interrupt while the rollback waits for a new master that
		// ignores QUIT: it stops at once, naming the command that finishes.
		{name: "second-interrupt", setup: func(f *fakeSys) { f.newIgnoresStop = true }, cancelAt: time.Second, hardAt: 5 * time.Second,
			want: ErrInconsistent, state: Inconsistent, advice: "baton upgrade rollback --pidfile", signals: "USR2,WINCH,HUP"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFakeSys(t)
				if tc.setup != nil {
					tc.setup(f)
				}
				old := f.pidOf(t)
				ctx, cancel := context.WithCancel(t.Context())
				hard, stop := context.WithCancel(t.Context())
				defer stop()
				if tc.cancelAt == 0 {
					cancel()
				} else {
					time.AfterFunc(tc.cancelAt, cancel)
				}
				if tc.hardAt != 0 {
					time.AfterFunc(tc.hardAt, stop)
				}
				m := fakeMachine(t, f)
				m.opts.Hard = hard
				start := time.Now()
				rep, err := m.Start(ctx)
				if !errors.Is(err, tc.want) {
					t.Fatalf("start: %v, want %v", err, tc.want)
				}
				if tc.state != Inconsistent && rep.State != tc.state {
					t.Errorf("state %s, want %s", rep.State, tc.state)
				}
				if tc.state == Inconsistent && (rep.Journal == nil || rep.Journal.State != Inconsistent) {
					t.Errorf("the journal does not say what is pending: %+v", rep.Journal)
				}
				if !strings.Contains(rep.Advice, tc.advice) {
					t.Errorf("advice %q does not say %q", rep.Advice, tc.advice)
				}
				if got := strings.Join(f.signalsTo(old), ","); got != tc.signals {
					t.Errorf("old master got %q, want %q", got, tc.signals)
				}
				if tc.hardAt != 0 && time.Since(start) > tc.hardAt+time.Second {
					t.Errorf("a second interrupt at %v stopped only after %v", tc.hardAt, time.Since(start))
				}
				if tc.state == RolledBack && f.pidOf(t) != old {
					t.Errorf("the pid file names %d, want the old master %d", f.pidOf(t), old)
				}
			})
		})
	}
}

// TestInterruptedCommitFinishes: a commit whose stop signal was sent
// finishes although its context is cancelled.
func TestInterruptedCommitFinishes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeSys(t)
		if _, err := fakeMachine(t, f).Start(t.Context()); err != nil {
			t.Fatalf("start: %v", err)
		}
		nu := f.pidOf(t)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		rep, err := fakeMachine(t, f).Commit(ctx)
		if err != nil || rep.State != Committed || f.pidOf(t) != nu {
			t.Fatalf("commit: %v, state %s, pid file %d (want committed to %d)", err, rep.State, f.pidOf(t), nu)
		}
	})
}

// TestDrainCapabilityFromWorkers: an nginx master whose facts do not say
// it is daemonized and that no journal knows (upgraded by hand, or by
// Debian's init script: its title hides NGINX=) is judged by its workers
// right after WINCH: drained when they go, a warning and no drain wait
// when they stay ("daemon off").
func TestDrainCapabilityFromWorkers(t *testing.T) {
	for _, tc := range []struct {
		name    string
		ignores bool
		warned  bool
	}{
		{name: "started-by-a-manual-upgrade", ignores: false, warned: false},
		{name: "daemon-off", ignores: true, warned: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFakeSys(t)
				f.ignoreWinch = tc.ignores
				sys := f.system()
				sys.Facts = func(pid int) MasterFacts { return MasterFacts{PID: pid, Session: 1} }
				m, err := New(Options{Pidfile: f.pidfile, VerifyFor: time.Second, Sys: sys})
				if err != nil {
					t.Fatal(err)
				}
				old := f.pidOf(t)
				rep, err := m.Start(t.Context())
				if err != nil {
					t.Fatalf("start: %v", err)
				}
				warned := strings.Contains(strings.Join(rep.Warnings, "\n"), "ignores WINCH")
				if warned != tc.warned {
					t.Errorf("warned %v, want %v: %q", warned, tc.warned, rep.Warnings)
				}
				f.mu.Lock()
				left := len(f.workersOf(old))
				f.mu.Unlock()
				if want := map[bool]int{false: 0, true: 2}[tc.ignores]; left != want {
					t.Errorf("old master has %d workers after the drain, want %d", left, want)
				}
			})
		})
	}
}

// TestBrokenUpgradeSettledByMasters: an upgrade left Inconsistent (the old
// master was killed during the drain, so its rollback failed) that the
// masters then settled themselves — the new master took the pid file, as
// gunicorn's does when its parent dies — is finished by the verb the
// operator was told to run: commit exits 0 and records Committed, it does
// not refuse with "nothing to commit".
func TestBrokenUpgradeSettledByMasters(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeSys(t)
		old := f.pidOf(t)
		if _, err := fakeMachine(t, f).Start(t.Context()); err != nil {
			t.Fatalf("start: %v", err)
		}
		nu := f.pidOf(t)
		j, err := readJournal(JournalPath(f.pidfile))
		if err != nil {
			t.Fatal(err)
		}
		j.State = Inconsistent
		if err := writeJournal(JournalPath(f.pidfile), j); err != nil {
			t.Fatal(err)
		}
		f.mu.Lock()
		f.kill(old)
		f.mu.Unlock()
		os.Remove(f.pidfile + ".oldbin")
		rep, err := fakeMachine(t, f).Commit(t.Context())
		if err != nil || rep.State != Committed || f.pidOf(t) != nu {
			t.Fatalf("commit: %v, state %s, pid file %d (want committed to %d)", err, rep.State, f.pidOf(t), nu)
		}
		if j, err := readJournal(JournalPath(f.pidfile)); err != nil || j.State != Committed {
			t.Errorf("journal after commit: %+v, %v; want committed", j, err)
		}
	})
}
