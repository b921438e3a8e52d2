package upgrade

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/batonhq/baton/procs"
)

func TestCommandEnv(t *testing.T) {
	env := []string{
		"PATH=/usr/bin:/bin", "HOME=/root", "LANG=C.UTF-8", "TZ=UTC", "NOTIFY=1", "LISTEN=1", "XBATON_X=1", "baton_x=1",
		"NOTIFY_SOCKET=/run/systemd/notify", "WATCHDOG_PID=1", "WATCHDOG_USEC=1000", "LISTEN_PID=1", "LISTEN_FDS=2",
		"LISTEN_FDNAMES=a:b", "BATON_PIDFILE=/run/app.pid", "BATON_INHERIT_FDS=3", "BATON_=1",
	}
	want := env[:8]
	if got := commandEnv(env); !slices.Equal(got, want) {
		t.Errorf("commandEnv =\n%q\nwant\n%q", got, want)
	}
}

// pidFIFO makes a FIFO for a command to write a child's pid to: the write
// is the handshake that says the child runs. The pid arrives on the
// channel, after which then (if any) is called. A cleanup unblocks the
// reader should the command never write.
func pidFIFO(t *testing.T, then func()) (string, <-chan []byte) {
	t.Helper()
	fifo := filepath.Join(t.TempDir(), "child.fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	said := make(chan []byte, 1)
	go func() {
		b, _ := os.ReadFile(fifo)
		said <- b
		if then != nil {
			then()
		}
	}()
	t.Cleanup(func() {
		if w, err := os.OpenFile(fifo, os.O_WRONLY|unix.O_NONBLOCK, 0); err == nil {
			w.Close()
		}
	})
	return fifo, said
}

// childPid parses the pid a command wrote and registers a cleanup that
// kills it by pid should the test fail with it alive (it is a sleep: the
// comm tells a recycled pid apart).
func childPid(t *testing.T, said []byte) int {
	t.Helper()
	pid, err := strconv.Atoi(strings.TrimSpace(string(said)))
	if err != nil {
		t.Fatalf("the command wrote %q, want its child's pid", said)
	}
	t.Cleanup(func() {
		if st, err := procs.Info(pid); err == nil && !st.Zombie() && st.Comm == "sleep" {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	return pid
}

// TestExecCheckStopsGroup: an exec: check leaves nothing of its own
// behind, whether its context ended it once its child ran (a timeout and
// an interrupt are the same path: sh and a grandchild, one that ignores
// SIGTERM) or it exited leaving a background child; when Run returns, the
// child is gone.
func TestExecCheckStopsGroup(t *testing.T) {
	for _, tc := range []struct {
		name string
		cmd  string // %s: the FIFO to write the child's pid to
		stop bool   // end the context once the child runs
		fail string // "": the check passes
	}{
		{name: "stopped-grandchild", cmd: "sh -c 'sleep 30 & echo $! >%s; wait'", stop: true, fail: "context canceled"},
		{name: "stopped-grandchild-ignores-TERM", cmd: "trap '' TERM; sh -c 'sleep 30 & echo $! >%s; wait'", stop: true, fail: "context canceled"},
		{name: "exit-0-leaves-child", cmd: "sleep 30 >/dev/null 2>&1 & echo $! >%s"},
		{name: "exit-1-leaves-child", cmd: "sleep 30 & echo $! >%s; exit 1", fail: "exit status 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(testCtx(t))
			defer cancel()
			then := cancel
			if !tc.stop {
				then = nil
			}
			fifo, said := pidFIFO(t, then)
			c, err := ParseCheck("exec:" + strings.ReplaceAll(tc.cmd, "%s", fifo))
			if err != nil {
				t.Fatal(err)
			}
			err = c.Run(ctx)
			t.Logf("check: %v", err)
			if tc.fail == "" && err != nil || tc.fail != "" && (err == nil || !strings.Contains(err.Error(), tc.fail)) {
				t.Errorf("check: %v; want %q", err, tc.fail)
			}
			if pid := childPid(t, <-said); alive(pid) {
				t.Errorf("the command's child %d still runs after the check returned", pid)
			}
		})
	}
}

// TestCommandEnvironment: neither the preflight command nor an exec: check
// sees baton's service-manager or BATON_* variables; the rest passes.
func TestCommandEnvironment(t *testing.T) {
	f := startFake(t, fakeOptions{})
	master := f.pid(f.pidfile)
	for _, kv := range []string{"NOTIFY_SOCKET=/run/systemd/notify", "WATCHDOG_USEC=1000", "LISTEN_PID=1", "LISTEN_FDS=1",
		"LISTEN_FDNAMES=x", "BATON_PIDFILE=/run/other.pid", "BATON_SECRET=1", "KEEP_ME=kept"} {
		name, val, _ := strings.Cut(kv, "=")
		t.Setenv(name, val)
	}
	check := func(t *testing.T, path string) {
		t.Helper()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		env := strings.Split(string(b), "\n")
		for _, kv := range env {
			name, _, _ := strings.Cut(kv, "=")
			if strings.HasPrefix(name, "BATON_") || slices.Contains([]string{"NOTIFY_SOCKET", "WATCHDOG_USEC", "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"}, name) {
				t.Errorf("the command saw %s", kv)
			}
		}
		for _, want := range []string{"KEEP_ME=kept", "PATH=" + os.Getenv("PATH")} {
			if !slices.Contains(env, want) {
				t.Errorf("the command did not see %s", want)
			}
		}
	}
	t.Run("preflight", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "env")
		_, err := newMachine(t, f, func(o *Options) { o.Preflight = "env >" + out + "; exit 1" }).Start(testCtx(t))
		if !errors.Is(err, ErrPreflight) {
			t.Fatalf("start: %v, want ErrPreflight", err)
		}
		check(t, out)
	})
	t.Run("exec-check", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "env")
		c, err := ParseCheck("exec:env >" + out)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Run(testCtx(t)); err != nil {
			t.Fatal(err)
		}
		check(t, out)
	})
	if sig := f.signals(master); strings.Contains(sig, "signal") {
		t.Errorf("the master got signals:\n%s", sig)
	}
}

// TestPreflightTimeout: a preflight command that hangs is stopped at
// --preflight-timeout; Start refuses (ErrPreflight,
// ErrTimeout) in one line, signals nothing and releases the lock.
func TestPreflightTimeout(t *testing.T) {
	f := startFake(t, fakeOptions{})
	master := f.pid(f.pidfile)
	_, err := newMachine(t, f, func(o *Options) {
		o.Preflight = "sleep 20"
		o.PreflightTimeout = 200 * time.Millisecond
	}).Start(testCtx(t))
	if !errors.Is(err, ErrPreflight) || !errors.Is(err, ErrTimeout) {
		t.Fatalf("start: %v; want ErrPreflight and ErrTimeout", err)
	}
	t.Logf("start: %v", err)
	for _, want := range []string{"timed out after 200ms", "--preflight-timeout", "sleep 20"} {
		if !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("error %q: want one line saying %q", err, want)
		}
	}
	l, err := AcquireLock(LockPath(f.pidfile))
	if err != nil {
		t.Fatalf("the lock is still held: %v", err)
	}
	l.Release()
	if sig := f.signals(master); strings.Contains(sig, "signal") {
		t.Errorf("the master got signals:\n%s", sig)
	}
}

// TestPreflightInterrupted: an interrupt (ctx cancelled) during the
// preflight stops the command's group too, and is an interrupt, not a
// timeout; nothing is signalled.
func TestPreflightInterrupted(t *testing.T) {
	f := startFake(t, fakeOptions{})
	master := f.pid(f.pidfile)
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	fifo, said := pidFIFO(t, cancel)
	_, err := newMachine(t, f, func(o *Options) { o.Preflight = "sleep 20 & echo $! >" + fifo + "; wait" }).Start(ctx)
	if !errors.Is(err, ErrInterrupted) || errors.Is(err, ErrTimeout) {
		t.Fatalf("start: %v; want ErrInterrupted, not a timeout", err)
	}
	if pid := childPid(t, <-said); alive(pid) {
		t.Errorf("the preflight's child %d still runs", pid)
	}
	if sig := f.signals(master); strings.Contains(sig, "signal") {
		t.Errorf("the master got signals:\n%s", sig)
	}
}
