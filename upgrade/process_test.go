package upgrade

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/batonhq/baton/procs"
)

// testCtx is bounded by the test's deadline minus a margin.
func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	if d, ok := t.Deadline(); ok {
		ctx, cancel = context.WithDeadline(context.Background(), d.Add(-time.Until(d)/5))
	}
	t.Cleanup(cancel)
	return ctx
}

func newMachine(t *testing.T, f *fake, mod func(*Options)) *Machine {
	t.Helper()
	o := Options{
		Pidfile:      f.pidfile,
		Checks:       []Check{f.check()},
		SpawnTimeout: 10 * time.Second,
		DrainTimeout: 10 * time.Second,
		VerifyFor:    200 * time.Millisecond,
		StopTimeout:  2 * time.Second,
		Progress:     func(s Step) { t.Log(s) },
	}
	if mod != nil {
		mod(&o)
	}
	m, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func alive(pid int) bool {
	st, err := procs.Info(pid)
	return err == nil && !st.Zombie()
}

// waitGone waits (bounded) for pid to exit: a stopped master is reaped by
// its parent asynchronously.
func waitGone(t *testing.T, pid int) {
	t.Helper()
	p, err := procs.Open(pid)
	if err != nil {
		return
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Wait(ctx); err != nil {
		t.Fatalf("pid %d still runs: %v", pid, err)
	}
}

func workersOf(t *testing.T, pid int) []procs.Stat {
	t.Helper()
	kids, err := procs.ChildrenByRole(pid, procs.RoleWorker)
	if err != nil {
		t.Fatal(err)
	}
	return kids
}

// assertRolledBack: the old master serves alone, named by the pid file.
func assertRolledBack(t *testing.T, f *fake, old int, newPID int) {
	t.Helper()
	if got := f.pid(f.pidfile); got != old {
		t.Errorf("pid file names %d, want the old master %d", got, old)
	}
	if _, err := os.Stat(f.pidfile + ".oldbin"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf(".oldbin left behind: %v", err)
	}
	if newPID != 0 {
		waitGone(t, newPID)
	}
	if n := len(workersOf(t, old)); n != 2 {
		t.Errorf("old master has %d workers, want 2", n)
	}
	if body := f.get(); !strings.Contains(body, "version=v1") {
		t.Errorf("serving %q, want v1", body)
	}
}

func TestStartCommit(t *testing.T) {
	f := startFake(t, fakeOptions{next: []string{"FAKE_VERSION=v2"}})
	old := f.pid(f.pidfile)
	rep, err := newMachine(t, f, func(o *Options) { o.Commit = true }).Start(testCtx(t))
	if err != nil {
		t.Fatalf("start --commit: %v", err)
	}
	if rep.State != Committed {
		t.Fatalf("state %s, want committed", rep.State)
	}
	nu := f.pid(f.pidfile)
	if nu == old || nu == 0 {
		t.Fatalf("pid file names %d (old %d)", nu, old)
	}
	waitGone(t, old)
	if _, err := os.Stat(f.pidfile + ".oldbin"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf(".oldbin left: %v", err)
	}
	if body := f.get(); !strings.Contains(body, "version=v2") || !strings.Contains(body, "master="+strconv.Itoa(nu)) {
		t.Errorf("serving %q, want v2 from master %d", body, nu)
	}
	var evs []string
	for _, tr := range rep.Journal.Transitions {
		evs = append(evs, tr.Event.String())
	}
	if got, want := strings.Join(evs, ","), "spawn,spawned,drain,drained,commit,committed"; got != want {
		t.Errorf("transitions %s, want %s", got, want)
	}
	if sig := f.signals(old); !strings.Contains(sig, "signal USR2") || !strings.Contains(sig, "signal WINCH") || !strings.Contains(sig, "signal QUIT") {
		t.Errorf("old master got signals:\n%s", sig)
	}
}

// TestNewMasterRetitles: a new master whose command line changes after it
// starts (unicorn's does) is the same master, not a dead one.
func TestNewMasterRetitles(t *testing.T) {
	f := startFake(t, fakeOptions{next: []string{"FAKE_MODE=retitle", "FAKE_VERSION=v2"}})
	rep, err := newMachine(t, f, func(o *Options) { o.Commit = true }).Start(testCtx(t))
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	if rep.State != Committed || !strings.Contains(f.get(), "version=v2") {
		t.Fatalf("state %s, serving %q", rep.State, f.get())
	}
}

func TestStartThenRollbackLater(t *testing.T) {
	f := startFake(t, fakeOptions{next: []string{"FAKE_VERSION=v2"}})
	old := f.pid(f.pidfile)
	rep, err := newMachine(t, f, nil).Start(testCtx(t))
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	if rep.State != Drained {
		t.Fatalf("state %s, want drained", rep.State)
	}
	nu := f.pid(f.pidfile)
	if f.pid(f.pidfile+".oldbin") != old || !alive(old) || !alive(nu) {
		t.Fatalf("want both masters alive: old %d new %d", old, nu)
	}
	if n := len(workersOf(t, old)); n != 0 {
		t.Errorf("old master still has %d workers after drain", n)
	}
	if body := f.get(); !strings.Contains(body, "version=v2") {
		t.Errorf("serving %q, want v2", body)
	}
	// A second start refuses: an upgrade is pending.
	if _, err := newMachine(t, f, nil).Start(testCtx(t)); !errors.Is(err, ErrUpgradePending) {
		t.Errorf("second start: %v, want ErrUpgradePending", err)
	}
	rep, err = newMachine(t, f, nil).Rollback(testCtx(t))
	if err != nil {
		t.Fatalf("rollback: %v", err)
	}
	if rep.State != RolledBack {
		t.Errorf("state %s, want rolled-back", rep.State)
	}
	assertRolledBack(t, f, old, nu)
	// Nothing left to roll back or commit.
	for name, verb := range map[string]func(*Machine, context.Context) (*Report, error){"commit": (*Machine).Commit, "rollback": (*Machine).Rollback} {
		if _, err := verb(newMachine(t, f, nil), testCtx(t)); !errors.Is(err, ErrIllegalTransition) {
			t.Errorf("%s after rollback: %v, want ErrIllegalTransition", name, err)
		}
	}
}

func TestStartThenCommitLater(t *testing.T) {
	f := startFake(t, fakeOptions{next: []string{"FAKE_VERSION=v2"}})
	old := f.pid(f.pidfile)
	if _, err := newMachine(t, f, nil).Start(testCtx(t)); err != nil {
		t.Fatalf("start: %v", err)
	}
	rep, err := newMachine(t, f, nil).Commit(testCtx(t))
	if err != nil {
		t.Fatalf("commit: %v", err)
	}
	if rep.State != Committed || rep.New == nil || rep.New.ID.PID != f.pid(f.pidfile) {
		t.Fatalf("state %s new %+v", rep.State, rep.New)
	}
	waitGone(t, old)
	if body := f.get(); !strings.Contains(body, "version=v2") {
		t.Errorf("serving %q", body)
	}
}

// TestAutoRollback drives every failure after the spawn.
func TestAutoRollback(t *testing.T) {
	for _, tc := range []struct {
		name string
		next []string
		mod  func(*Options)
		want string // in the error
	}{
		{name: "never-ready", next: []string{"FAKE_MODE=never-ready"}, mod: func(o *Options) { o.SpawnTimeout = 1500 * time.Millisecond }, want: "0 of 2 workers"},
		{name: "dies-at-once", next: []string{"FAKE_MODE=die"}, mod: func(o *Options) { o.SpawnTimeout = 5 * time.Second }, want: "spawn"},
		{name: "new-serves-500", next: []string{"FAKE_MODE=fail-health"}, mod: func(o *Options) { o.SpawnTimeout = 1500 * time.Millisecond }, want: "500"},
		{name: "fresh-listener", next: []string{"FAKE_MODE=other-listener"}, mod: func(o *Options) { o.SpawnTimeout = 1500 * time.Millisecond }, want: "does not hold the old master's listener"},
		{name: "ignores-quit", next: []string{"FAKE_MODE=ignore-quit,fail-health", "FAKE_VERSION=v2"}, mod: func(o *Options) {
			o.StopTimeout = 300 * time.Millisecond
		}, want: "500"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := startFake(t, fakeOptions{next: tc.next})
			old := f.pid(f.pidfile)
			rep, err := newMachine(t, f, tc.mod).Start(testCtx(t))
			if !errors.Is(err, ErrRolledBack) {
				t.Fatalf("start: %v, want ErrRolledBack", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
			if n := strings.Count(err.Error(), "upgrade:"); n != 1 {
				t.Errorf("error %q says 'upgrade:' %d times, want once", err, n)
			}
			if rep.State != RolledBack {
				t.Errorf("state %s, want rolled-back", rep.State)
			}
			nu := rep.Journal.New.PID
			assertRolledBack(t, f, old, nu)
			if tc.name == "ignores-quit" && !strings.Contains(f.signals(nu), "signal TERM") {
				t.Errorf("new master was not escalated to TERM:\n%s", f.signals(nu))
			}
			if pids := liveInGroup(f.cmd.Process.Pid); len(pids) != 3 {
				t.Errorf("processes left: %v, want the old master and its 2 workers", pids)
			}
		})
	}
}

func TestNoAutoRollback(t *testing.T) {
	f := startFake(t, fakeOptions{next: []string{"FAKE_MODE=fail-health"}})
	old := f.pid(f.pidfile)
	rep, err := newMachine(t, f, func(o *Options) {
		o.SpawnTimeout = time.Second
		o.NoAutoRollback = true
	}).Start(testCtx(t))
	if !errors.Is(err, ErrInconsistent) {
		t.Fatalf("start: %v, want ErrInconsistent", err)
	}
	if rep.Advice == "" {
		t.Error("no advice")
	}
	nu := f.pid(f.pidfile)
	if !alive(old) || !alive(nu) || nu == old {
		t.Fatalf("want both masters alive, old %d new %d", old, nu)
	}
	if _, err := newMachine(t, f, nil).Rollback(testCtx(t)); err != nil {
		t.Fatalf("rollback: %v", err)
	}
	assertRolledBack(t, f, old, nu)
}

func TestOldMasterDoesNotRestorePidfile(t *testing.T) {
	f := startFake(t, fakeOptions{env: []string{"FAKE_NO_RESTORE=1"}, next: []string{"FAKE_VERSION=v2"}})
	old := f.pid(f.pidfile)
	if _, err := newMachine(t, f, nil).Start(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	nu := f.pid(f.pidfile)
	rep, err := newMachine(t, f, nil).Rollback(testCtx(t))
	if err != nil {
		t.Fatalf("rollback: %v", err)
	}
	found := false
	for _, s := range rep.Steps {
		found = found || strings.Contains(s.Msg, "restored")
	}
	if !found {
		t.Error("baton did not say it restored the pid file")
	}
	assertRolledBack(t, f, old, nu)
}

func TestNewMasterKilledBehindBatonsBack(t *testing.T) {
	f := startFake(t, fakeOptions{next: []string{"FAKE_VERSION=v2"}})
	old := f.pid(f.pidfile)
	if _, err := newMachine(t, f, nil).Start(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	nu := f.pid(f.pidfile)
	workers := workersOf(t, nu)
	if err := syscall.Kill(nu, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitGone(t, nu)
	for _, w := range workers { // orphans, like nginx's
		_ = syscall.Kill(w.PID, syscall.SIGKILL)
	}
	// The fake restores its pid file and respawns, like nginx: status finds
	// the upgrade rolled back by itself.
	ctx := testCtx(t)
	var rep *Report
	err := waitFor(ctx, 10*time.Second, nil, func() (bool, string, error) {
		var err error
		rep, err = newMachine(t, f, nil).Status(ctx)
		if err != nil {
			return false, "", err
		}
		return rep.State == RolledBack, rep.State.String(), nil
	})
	if err != nil {
		t.Fatalf("status: %v (%+v)", err, rep)
	}
	if len(rep.Findings) == 0 {
		t.Error("status found nothing to say about the vanished master")
	}
	// rollback now has nothing to do; a new start works.
	if _, err := newMachine(t, f, nil).Rollback(ctx); !errors.Is(err, ErrIllegalTransition) {
		t.Errorf("rollback: %v, want ErrIllegalTransition", err)
	}
	rep, err = newMachine(t, f, func(o *Options) { o.Commit = true }).Start(ctx)
	if err != nil {
		t.Fatalf("start after: %v", err)
	}
	if rep.State != Committed {
		t.Errorf("state %s", rep.State)
	}
	_ = old
}

// startOrchestrator runs Start in a helper process and waits until the
// journal says state.
func startOrchestrator(t *testing.T, f *fake, state State) *exec.Cmd {
	t.Helper()
	markUsed("orchestrate", 0)
	cmd := exec.Command(testBin)
	cmd.Env = append(os.Environ(), helperEnv+"=orchestrate", "FAKE_PIDFILE="+f.pidfile)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	markUsed("orchestrate", cmd.Process.Pid)
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	})
	err := waitFor(testCtx(t), 20*time.Second, nil, func() (bool, string, error) {
		j, err := ReadJournal(JournalPath(f.pidfile))
		if err != nil || j == nil {
			return false, "no journal", nil
		}
		return j.State == state, j.State.String(), nil
	})
	if err != nil {
		t.Fatalf("orchestrator never reached %s: %v", state, err)
	}
	return cmd
}

func TestOrchestratorCrashResume(t *testing.T) {
	for _, tc := range []struct {
		name   string
		next   []string
		at     State
		verb   func(*Machine, context.Context) (*Report, error)
		want   State
		commit bool
	}{
		{name: "killed-while-verifying/commit", next: []string{"FAKE_VERSION=v2"}, at: Drained, verb: (*Machine).Commit, want: Committed, commit: true},
		{name: "killed-while-verifying/rollback", next: []string{"FAKE_VERSION=v2"}, at: Drained, verb: (*Machine).Rollback, want: RolledBack},
		{name: "killed-while-spawning/rollback", next: []string{"FAKE_MODE=never-ready"}, at: Spawning, verb: (*Machine).Rollback, want: RolledBack},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := startFake(t, fakeOptions{next: tc.next})
			old := f.pid(f.pidfile)
			orch := startOrchestrator(t, f, tc.at)
			if tc.at == Spawning {
				// Let the new master write its pid file before the crash.
				waitFor(testCtx(t), 10*time.Second, nil, func() (bool, string, error) {
					return f.pid(f.pidfile+".oldbin") == old && f.pid(f.pidfile) != old && f.pid(f.pidfile) != 0, "", nil
				})
			}
			// While it holds the lock, a second orchestrator fails at once
			// naming it, and signals nothing.
			_, err := newMachine(t, f, nil).Commit(testCtx(t))
			var le *LockError
			if !errors.As(err, &le) || !errors.Is(err, ErrLocked) || le.PID != orch.Process.Pid {
				t.Fatalf("second orchestrator: %v, want a LockError naming %d", err, orch.Process.Pid)
			}
			if err := syscall.Kill(orch.Process.Pid, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			_ = orch.Wait()
			nu := f.pid(f.pidfile)
			rep, err := tc.verb(newMachine(t, f, nil), testCtx(t))
			if err != nil {
				t.Fatalf("resume: %v", err)
			}
			if rep.State != tc.want {
				t.Fatalf("state %s, want %s", rep.State, tc.want)
			}
			if tc.commit {
				waitGone(t, old)
				if !strings.Contains(f.get(), "version=v2") {
					t.Error("not serving v2")
				}
			} else {
				assertRolledBack(t, f, old, nu)
			}
		})
	}
}

// TestRefusesBadPidfile: a pid file that does not name a live master of the
// flavor is refused with nothing signalled.
func TestRefusesBadPidfile(t *testing.T) {
	f := startFake(t, fakeOptions{})
	master := f.pid(f.pidfile)
	// A bystander that USR2 would kill (default action): it must survive.
	sleeper := exec.Command("sleep", "60")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sleeper.Process.Kill(); sleeper.Wait() })
	for _, tc := range []struct {
		name  string
		setup func(path string)
		want  error
	}{
		{name: "missing", setup: func(string) {}, want: ErrNotRunning},
		{name: "empty", setup: func(p string) { os.WriteFile(p, nil, 0o644) }, want: ErrNotRunning},
		{name: "garbage", setup: func(p string) { os.WriteFile(p, []byte("nginx\n"), 0o644) }, want: ErrNotRunning},
		{name: "negative", setup: func(p string) { os.WriteFile(p, []byte("-1\n"), 0o644) }, want: ErrNotRunning},
		{name: "huge", setup: func(p string) { os.WriteFile(p, []byte("99999999999999999999\n"), 0o644) }, want: ErrNotRunning},
		{name: "init", setup: func(p string) { os.WriteFile(p, []byte("1\n"), 0o644) }, want: ErrNotRunning},
		{name: "symlink", setup: func(p string) { os.Symlink(f.pidfile, p) }, want: ErrNotRunning},
		{name: "dead-pid", setup: func(p string) {
			c := exec.Command("true")
			c.Run()
			os.WriteFile(p, []byte(strconv.Itoa(c.ProcessState.Pid())+"\n"), 0o644)
		}, want: ErrNotRunning},
		{name: "recycled-pid", setup: func(p string) {
			os.WriteFile(p, []byte(strconv.Itoa(sleeper.Process.Pid)+"\n"), 0o644)
		}, want: ErrNotRunning},
		{name: "recycled-pid-forced-flavor", setup: func(p string) {
			os.WriteFile(p, []byte(strconv.Itoa(sleeper.Process.Pid)+"\n"), 0o644)
			old := time.Now().Add(-time.Hour)
			os.Chtimes(p, old, old)
		}, want: ErrNotRunning},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "app.pid")
			tc.setup(path)
			flavor := ""
			if strings.HasSuffix(tc.name, "forced-flavor") {
				flavor = "nginx"
			}
			m, err := New(Options{Pidfile: path, Flavor: flavor, Progress: func(s Step) { t.Log(s) }})
			if err != nil {
				t.Fatal(err)
			}
			_, err = m.Start(testCtx(t))
			if !errors.Is(err, tc.want) {
				t.Fatalf("start: %v, want %v", err, tc.want)
			}
			t.Log(err)
			if _, err := os.Stat(JournalPath(path)); err == nil {
				t.Error("a journal was written: something was touched")
			}
		})
	}
	if sig := f.signals(master); strings.Contains(sig, "signal") {
		t.Errorf("the master got signals:\n%s", sig)
	}
	if !alive(sleeper.Process.Pid) {
		t.Error("the bystander was killed")
	}
}

func TestPreflightRefuses(t *testing.T) {
	f := startFake(t, fakeOptions{})
	master := f.pid(f.pidfile)
	for _, tc := range []struct {
		name string
		mod  func(*Options)
	}{
		{name: "preflight-command-fails", mod: func(o *Options) { o.Preflight = "echo config broken >&2; exit 1" }},
		{name: "check-fails", mod: func(o *Options) {
			c, _ := ParseCheck("tcp://127.0.0.1:1")
			o.Checks = append(o.Checks, c)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := newMachine(t, f, tc.mod).Start(testCtx(t))
			if !errors.Is(err, ErrPreflight) {
				t.Fatalf("start: %v, want ErrPreflight", err)
			}
		})
	}
	if sig := f.signals(master); strings.Contains(sig, "signal") {
		t.Errorf("the master got signals:\n%s", sig)
	}
}

// copyFile copies src to dst with mode 0755, through a temporary file and a
// rename, as a package manager replaces a binary.
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	tmp := dst + ".new"
	if err := os.WriteFile(tmp, data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		t.Fatal(err)
	}
}

// TestBinaryReplacedOnDisk: status says an upgrade is due once the binary
// is replaced, and the upgrade runs the new file.
func TestBinaryReplacedOnDisk(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "server")
	copyFile(t, testBin, bin)
	f := startFake(t, fakeOptions{bin: bin, next: []string{"FAKE_VERSION=v2"}})
	rep, err := newMachine(t, f, nil).Status(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Old == nil || rep.Old.BinaryGone || strings.Contains(strings.Join(rep.Findings, " "), "upgrade is due") {
		t.Fatalf("before the swap: %+v %q", rep.Old, rep.Findings)
	}
	copyFile(t, testBin, bin)
	rep, err = newMachine(t, f, nil).Status(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Old == nil || !rep.Old.BinaryGone || !strings.Contains(strings.Join(rep.Findings, " "), "upgrade is due") {
		t.Fatalf("after the swap: %+v %q", rep.Old, rep.Findings)
	}
	fi, err := os.Stat(bin)
	if err != nil {
		t.Fatal(err)
	}
	rep, err = newMachine(t, f, func(o *Options) { o.Commit = true }).Start(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	st, err := procs.Info(rep.New.ID.PID)
	if err != nil {
		t.Fatal(err)
	}
	if st.ExeDeleted || st.Exe != bin {
		t.Errorf("new master runs %s (deleted %v), want %s", st.Exe, st.ExeDeleted, bin)
	}
	if fi2, _ := os.Stat(st.Exe); !os.SameFile(fi, fi2) {
		t.Error("the new master does not run the replaced file")
	}
}

// TestPreflightBinaryGone: nothing is signalled when the binary the master
// would exec is gone.
func TestPreflightBinaryGone(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "server")
	copyFile(t, testBin, bin)
	f := startFake(t, fakeOptions{bin: bin})
	master := f.pid(f.pidfile)
	if err := os.Remove(bin); err != nil {
		t.Fatal(err)
	}
	_, err := newMachine(t, f, nil).Start(testCtx(t))
	if !errors.Is(err, ErrPreflight) || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("start: %v, want ErrPreflight about the binary", err)
	}
	if sig := f.signals(master); strings.Contains(sig, "signal") {
		t.Errorf("the master got signals:\n%s", sig)
	}
}

// TestNewMasterKilledDuringSpawn: the new master dies while baton waits for
// it; its orphaned workers (which, like nginx's, keep serving) are stopped
// and the old generation serves alone.
func TestNewMasterKilledDuringSpawn(t *testing.T) {
	f := startFake(t, fakeOptions{next: []string{"FAKE_MODE=fail-health", "FAKE_VERSION=v2"}})
	old := f.pid(f.pidfile)
	ctx := testCtx(t)
	// Killed from the progress callback, which the machine calls in line:
	// the moment it has found the new master and its workers, before any
	// check of the new generation runs (a poller of its own could lose that
	// window to the failed check's rollback).
	nu := 0
	rep, err := newMachine(t, f, func(o *Options) {
		o.StopTimeout = time.Second
		o.Progress = func(s Step) {
			t.Log(s)
			if s.Name == "spawn" && strings.HasPrefix(s.Msg, "new master ") && nu == 0 {
				nu = f.pid(f.pidfile)
				syscall.Kill(nu, syscall.SIGKILL)
			}
		}
	}).Start(ctx)
	if nu == 0 || nu == old {
		t.Fatalf("the new master was never found (pid file names %d)", nu)
	}
	// Its checks may fail first (the new workers answer 500): either way
	// the upgrade is rolled back and nothing of it is left.
	if !errors.Is(err, ErrRolledBack) || !strings.Contains(err.Error(), "died") && !strings.Contains(err.Error(), "500") {
		for _, pid := range liveInGroup(f.cmd.Process.Pid) {
			st, _ := procs.Info(pid)
			wchan, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/wchan")
			t.Logf("left: %d ppid %d %c %q wchan %s", pid, st.PPID, st.State, st.Cmdline, wchan)
		}
		t.Logf("fake log:\n%s", readAll(f.dir))
		t.Fatalf("start: %v, want a rollback", err)
	}
	if rep.State != RolledBack {
		t.Errorf("state %s", rep.State)
	}
	assertRolledBack(t, f, old, nu)
	if pids := liveInGroup(f.cmd.Process.Pid); len(pids) != 3 {
		t.Errorf("processes left: %v, want the old master and its 2 workers", pids)
	}
	for range 20 {
		if body := f.get(); !strings.Contains(body, "version=v1") {
			t.Fatalf("an orphan still serves: %q", body)
		}
	}
}

// readAll concatenates the fake's signal logs, for failure messages.
func readAll(dir string) string {
	var sb strings.Builder
	logs, _ := filepath.Glob(filepath.Join(dir, "signals.*.log"))
	for _, l := range logs {
		b, _ := os.ReadFile(l)
		sb.WriteString(filepath.Base(l) + ":\n" + string(b))
	}
	return sb.String()
}
