package upgrade

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/batonhq/baton/procs"
)

// This file runs the shell commands an operator gives baton: the
// --preflight command (Options.Preflight) and exec: checks. Each runs as
// /bin/sh -c CMD and:
//
//   - leads a process group of its own (Setpgid), so that what it starts
//     can be stopped with it: `sleep 7; true` must not leave sleep running
//     once its check has timed out;
//   - when its context is done (its timeout, an interrupt), gets SIGTERM
//     sent to the whole group, and sh SIGKILL after CommandGrace
//     (exec.Cmd's Cancel and WaitDelay);
//   - leaves nothing behind: once sh has exited, by itself or not, what is
//     left of its group gets SIGTERM, then SIGKILL after CommandGrace, and
//     is waited for. sh is reaped only after that: while it is an unreaped
//     zombie its pid, which is the group's id, cannot be reused, so
//     kill(-pgid) never reaches a stranger. A process that leaves the group
//     (setsid(2), setpgid(2): a daemon) is outside this;
//   - gets baton's environment without the variables listed in
//     commandEnvDropped, which would let it speak for baton or for the
//     service manager that started baton.
//
// A command ends within its timeout plus three CommandGrace periods at the
// most (sh ignoring SIGTERM, then its group ignoring it, then SIGKILL).

// CommandGrace is how long a --preflight command or exec: check, and what
// it left in its process group, have after SIGTERM before SIGKILL.
const CommandGrace = time.Second

// maxCommandOutput bounds the output kept of one command (stdout and
// stderr together); the rest is read and dropped.
const maxCommandOutput = 64 << 10

// commandEnvDropped lists the variables a command does not inherit:
//   - NOTIFY_SOCKET, WATCHDOG_PID, WATCHDOG_USEC: sd_notify(3); with them a
//     command could tell systemd that baton's service is ready, stopping or
//     has another main pid;
//   - LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES: sd_listen_fds(3) socket
//     activation, which describes descriptors of baton's, not the
//     command's;
//   - every BATON_* variable: baton's own settings and protocol (flags set
//     through the environment, the master's inherited-socket variables),
//     which would make a baton the command runs act on baton's behalf.
//
// Everything else (PATH, HOME, LANG, TZ, ...) is passed on unchanged.
var commandEnvDropped = []string{"NOTIFY_SOCKET", "WATCHDOG_PID", "WATCHDOG_USEC", "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", "BATON_*"}

// commandEnv is env without the variables of commandEnvDropped.
func commandEnv(env []string) []string { return procs.DropEnv(env, droppedVar) }

func droppedVar(name string) bool {
	for _, d := range commandEnvDropped {
		if prefix, ok := strings.CutSuffix(d, "*"); ok && strings.HasPrefix(name, prefix) || name == d {
			return true
		}
	}
	return false
}

// runCommand runs cmd as this file describes and returns its combined
// output (the first maxCommandOutput bytes). The error is the command's
// (an *exec.ExitError), or wraps ctx.Err() when ctx ended it, or says what
// of its group outlived SIGKILL. It is safe for concurrent use.
func runCommand(ctx context.Context, cmd string, grace time.Duration) ([]byte, error) {
	out := &cappedBuffer{max: maxCommandOutput}
	c := exec.CommandContext(ctx, "/bin/sh", "-c", cmd)
	c.Env = commandEnv(os.Environ())
	c.Stdout, c.Stderr = out, out
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	c.Cancel = func() error { return signalGroup(c.Process.Pid, syscall.SIGTERM) }
	c.WaitDelay = grace
	if err := c.Start(); err != nil {
		return nil, err
	}
	// sh exits (or Cancel and WaitDelay end it) and stays a zombie, which
	// keeps the group's id ours while the rest of the group is stopped.
	exitErr := procs.WaitExited(c.Process.Pid)
	var stopErr error
	if exitErr == nil {
		stopErr = stopGroup(c.Process.Pid, grace)
	}
	err := c.Wait()
	if err != nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	return out.Bytes(), errors.Join(err, exitErr, stopErr)
}

// signalGroup signals process group pgid; a gone group is not an error to
// the caller, which then finds no member left.
func signalGroup(pgid int, sig syscall.Signal) error {
	if err := unix.Kill(-pgid, sig); err != nil && !errors.Is(err, unix.ESRCH) {
		return &procs.SignalError{PID: -pgid, Signal: sig, Err: err}
	}
	return nil
}

// stopGroup stops what is left of process group pgid, whose leader has
// exited and is not reaped: SIGTERM, then SIGKILL to what is still there
// after grace. It returns once no live member is left, or an error naming
// those still there grace after SIGKILL.
func stopGroup(pgid int, grace time.Duration) error {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		left, err := procs.Group(pgid)
		if err != nil || len(left) == 0 {
			return err
		}
		if err := signalGroup(pgid, sig); err != nil {
			return err
		}
		if err := waitGroupGone(pgid, grace); err != nil {
			return err
		}
	}
	left, err := procs.Group(pgid)
	if err == nil && len(left) > 0 {
		err = fmt.Errorf("process group %d: %v still running %v after SIGKILL", pgid, left, grace)
	}
	return err
}

// waitGroupGone waits, by pidfd, until process group pgid has no live
// member or timeout passes (nil either way; the caller looks again). A
// member forked meanwhile is found by the next look.
func waitGroupGone(pgid int, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for ctx.Err() == nil {
		left, err := procs.Group(pgid)
		if err != nil || len(left) == 0 {
			return err
		}
		procs.WaitGone(ctx, left)
	}
	return nil
}

// cappedBuffer keeps the first max bytes written to it and drops the rest,
// so that a chatty command cannot fill baton's memory. Its Write never
// fails: the command is not stopped by a broken pipe.
type cappedBuffer struct {
	buf []byte
	max int
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	if room := b.max - len(b.buf); room > 0 {
		b.buf = append(b.buf, p[:min(len(p), room)]...)
	}
	return len(p), nil
}

func (b *cappedBuffer) Bytes() []byte { return b.buf }
