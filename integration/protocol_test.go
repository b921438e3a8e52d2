package integration

import (
	"context"
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"
)

// dialect is how a flavor's master speaks the upgrade protocol, as the
// tests drive it by hand (baton's own table lives in package upgrade; this
// one is written from the servers' documentation and source, independently).
type dialect struct {
	// oldSuffix is where the old master's pid is while a new master runs:
	// "<pidfile>.oldbin" (nginx, unicorn, baton: the old master renames its
	// pid file before it execs), or the pid file itself (gunicorn 20.1 does
	// not rename it; it removes it when it exits).
	oldSuffix string
	// pendingSuffix names where a new master writes its pid while the old
	// one still runs: the pid file itself (the old one renamed it to
	// .oldbin), or gunicorn's "<pidfile>.2", renamed once the old exits.
	pendingSuffix string
	// stop is the graceful stop signal of a master.
	stop syscall.Signal
}

var dialects = map[flavor]dialect{
	flavorNginx:    {oldSuffix: ".oldbin", stop: syscall.SIGQUIT},
	flavorUnicorn:  {oldSuffix: ".oldbin", stop: syscall.SIGQUIT},
	flavorGunicorn: {pendingSuffix: ".2", stop: syscall.SIGTERM}, // gunicorn's QUIT is a fast stop
	flavorBaton:    {oldSuffix: ".oldbin", stop: syscall.SIGQUIT},
}

// sendSignal sends sig to pid, failing the test on error.
func sendSignal(t testing.TB, pid int, sig syscall.Signal) {
	t.Helper()
	if !isOurs(pid) {
		t.Fatalf("refusing to signal pid %d: not started by this test", pid)
	}
	if err := syscall.Kill(pid, sig); err != nil {
		t.Fatalf("kill -%v %d: %v", sig, pid, err)
	}
}

// rawSpawn sends USR2 to the master and waits for the new master: .oldbin
// (or, for gunicorn, the pid file) names the old one, the (pending) pid file
// a new live child of the old,
// which has all its workers. It returns the old and new pids.
func rawSpawn(ctx context.Context, t testing.TB, p *peer) (oldPID, newPID int) {
	t.Helper()
	d := dialects[p.flavor]
	oldPID = p.masterPID(t)
	sendSignal(t, oldPID, syscall.SIGUSR2)
	mustWait(ctx, t, 30*time.Second, "the new master", func() (bool, error) {
		ob, err := readPid(p.pidfile + d.oldSuffix)
		if err != nil {
			return false, err
		}
		if ob != oldPID {
			return false, fmt.Errorf("pid file%s names %d, want %d", d.oldSuffix, ob, oldPID)
		}
		newPID, err = readPid(p.pidfile + d.pendingSuffix)
		if err != nil {
			return false, err
		}
		pr, err := readProc(newPID)
		if err != nil || pr.zombie() {
			return false, fmt.Errorf("new master %d: %v", newPID, err)
		}
		return pr.ppid == oldPID, fmt.Errorf("new master %d has parent %d", newPID, pr.ppid)
	})
	p.owner.adopt(newPID)
	mustWait(ctx, t, 30*time.Second, "the new master's workers", func() (bool, error) {
		n := len(p.workersOf(newPID))
		return n == p.workers, fmt.Errorf("%d workers", n)
	})
	return oldPID, newPID
}

// rawDrain sends WINCH to the old master and waits until its workers are gone.
func rawDrain(ctx context.Context, t testing.TB, p *peer, oldPID int) {
	t.Helper()
	sendSignal(t, oldPID, syscall.SIGWINCH)
	mustWait(ctx, t, 30*time.Second, "the old master's workers to exit", func() (bool, error) {
		n := len(p.workersOf(oldPID))
		return n == 0, fmt.Errorf("%d workers left", n)
	})
}

// rawCommit stops the old master gracefully and waits until the pid file
// names the new master alone.
func rawCommit(ctx context.Context, t testing.TB, p *peer, oldPID, newPID int) {
	t.Helper()
	sendSignal(t, oldPID, dialects[p.flavor].stop)
	mustWait(ctx, t, 30*time.Second, "the old master to exit", func() (bool, error) { return !alive(oldPID), nil })
	mustWait(ctx, t, 30*time.Second, "the pid file to name the new master", func() (bool, error) {
		return pidfilesSettled(p, newPID)
	})
}

// rawRollback gives the old master its workers back (HUP), stops the new
// master and waits until the pid file names the old master alone. gunicorn's
// old master rewrites its pid file on HUP itself; nginx and unicorn rename
// .oldbin back when the new master exits.
func rawRollback(ctx context.Context, t testing.TB, p *peer, oldPID, newPID int) {
	t.Helper()
	sendSignal(t, oldPID, syscall.SIGHUP)
	mustWait(ctx, t, 30*time.Second, "the old master's workers to come back", func() (bool, error) {
		n := len(p.workersOf(oldPID))
		return n == p.workers, fmt.Errorf("%d workers", n)
	})
	sendSignal(t, newPID, dialects[p.flavor].stop)
	mustWait(ctx, t, 30*time.Second, "the new master to exit", func() (bool, error) { return !alive(newPID), nil })
	mustWait(ctx, t, 30*time.Second, "the pid file to name the old master", func() (bool, error) {
		return pidfilesSettled(p, oldPID)
	})
}

// pidfilesSettled reports whether the pid file names master and no .oldbin
// or .2 is left.
func pidfilesSettled(p *peer, master int) (bool, error) {
	pid, err := readPid(p.pidfile)
	if err != nil {
		return false, err
	}
	if pid != master {
		return false, fmt.Errorf("pid file names %d", pid)
	}
	for _, f := range p.pidfiles()[1:] {
		if _, err := os.Stat(f); err == nil {
			return false, fmt.Errorf("%s still there", f)
		}
	}
	return true, nil
}

// TestProtocol drives each real server through the upgrade protocol by hand
// (USR2, WINCH, then QUIT old or HUP old + QUIT new) under load: the
// harness's sanity check, and the proof that the peers behave as baton's
// flavor table says. No request may fail.
func TestProtocol(t *testing.T) {
	for _, f := range allFlavors {
		for _, commit := range []bool{true, false} {
			name := string(f) + "/rollback"
			if commit {
				name = string(f) + "/commit"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				p := startPeer(t, f, peerOptions{})
				ctx := testContext(t)
				tr := startLoad(ctx, t, p)
				tr.progress(ctx, t, 20)
				p.release(t, "v2")
				oldPID, newPID := rawSpawn(ctx, t, p)
				tr.progress(ctx, t, 20)
				rawDrain(ctx, t, p, oldPID)
				tr.progress(ctx, t, 20)
				if commit {
					rawCommit(ctx, t, p, oldPID, newPID)
				} else {
					p.release(t, "v1") // the operator points current back, then rolls back
					rawRollback(ctx, t, p, oldPID, newPID)
				}
				tr.progress(ctx, t, 20)
				res := tr.stop(t)
				assertNoFailures(t, res...)
				recordFigures(t, res)
				assertSawVersions(t, res, "v1", "v2")
				want, master := "v1", oldPID
				if commit {
					want, master = "v2", newPID
				}
				p.wantServing(ctx, t, want)
				p.wantPidfiles(t, master)
				p.wantSocket(ctx, t)
			})
		}
	}
}
