//go:build linux

package procs

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// noPidfd is set once pidfd_open(2) turned out to be unavailable (Linux
// before 5.3, or a seccomp filter that rejects it): later handles go straight
// to the fallback.
var noPidfd atomic.Bool

func open(pid int) (*Process, error) {
	// The process at pid may be replaced between reading its start time and
	// opening the pidfd; then the new one is "the process at pid" and a
	// second try pins it.
	var err error
	for range 3 {
		var st Stat
		if st, err = readLiveStat(pid); err != nil {
			return nil, err
		}
		var p *Process
		if p, err = openIdentity(st.Identity()); !errors.Is(err, ErrReused) {
			return p, err
		}
	}
	return nil, err
}

func openIdentity(id Identity) (*Process, error) {
	if err := checkIdentity(id); err != nil {
		return nil, err
	}
	fd := -1
	if !noPidfd.Load() {
		f, err := unix.PidfdOpen(id.PID, 0)
		switch {
		case err == nil:
			fd = f
		case errors.Is(err, unix.ENOSYS), errors.Is(err, unix.EPERM):
			// EPERM: seccomp filters of older container runtimes answer
			// unknown syscalls with it; pidfd_open itself needs no privilege.
			noPidfd.Store(true)
		case errors.Is(err, unix.ESRCH):
			return nil, &goneError{pid: id.PID}
		default:
			return nil, fmt.Errorf("procs: pidfd_open %v: %w", id, err)
		}
	}
	// The pid may have been reused between the check above and pidfd_open:
	// then the pidfd refers to the new process. Reading the start time again
	// AFTER pidfd_open settles it: if pid still shows id's start time, the
	// process at pid was id both before and after pidfd_open (a pid cannot
	// go from id to another process and back), so the pidfd refers to id.
	if err := checkIdentity(id); err != nil {
		if fd >= 0 {
			unix.Close(fd)
		}
		return nil, err
	}
	return &Process{id: id, pidfd: fd, done: make(chan struct{})}, nil
}

// checkIdentity reports whether id still runs: a goneError when pid is gone
// or a zombie, an error wrapping ErrReused (and ErrGone: the process asked
// for no longer exists) when pid now belongs to another process.
func checkIdentity(id Identity) error {
	st, err := readLiveStat(id.PID)
	if err != nil {
		return err
	}
	return sameIdentity(st, id)
}

// sameIdentity reports an error wrapping ErrReused (and ErrGone: the process
// asked for no longer exists) when st, read at id's pid, is another process.
func sameIdentity(st Stat, id Identity) error {
	if st.Start != id.Start {
		return fmt.Errorf("procs: pid %d now started at tick %d, not %v: %w (%w)", id.PID, st.Start, id, ErrReused, ErrGone)
	}
	return nil
}

func (p *Process) closeFD() error {
	if p.pidfd < 0 {
		return nil
	}
	err := unix.Close(p.pidfd)
	p.pidfd = -1
	if err != nil {
		return fmt.Errorf("procs: close pidfd of %v: %w", p.id, err)
	}
	return nil
}

func (p *Process) signal(sig syscall.Signal) error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return &SignalError{PID: p.id.PID, Signal: sig, Err: ErrClosed}
	}
	if p.pidfd >= 0 {
		// pidfd_send_signal(2) succeeds on a zombie (the task still exists
		// until it is reaped), so look first: a zombie counts as gone.
		exited, err := pidfdExited(p.pidfd)
		if err != nil {
			return &SignalError{PID: p.id.PID, Signal: sig, Err: err}
		}
		if exited {
			return &SignalError{PID: p.id.PID, Signal: sig, Err: &goneError{pid: p.id.PID}}
		}
		if err := unix.PidfdSendSignal(p.pidfd, sig, nil, 0); err != nil {
			if errors.Is(err, unix.ESRCH) {
				err = &goneError{pid: p.id.PID}
			}
			return &SignalError{PID: p.id.PID, Signal: sig, Err: err}
		}
		return nil
	}
	// Fallback without pidfds: check the start time, then kill(2). The
	// residual race: if the process exits, is reaped and its pid is given to
	// a new process in the microseconds between the check and kill(2), the
	// signal hits the new process. It takes a full cycle of the pid space
	// within that window, which is why this is only the fallback.
	if err := checkIdentity(p.id); err != nil {
		return &SignalError{PID: p.id.PID, Signal: sig, Err: err}
	}
	if err := unix.Kill(p.id.PID, sig); err != nil {
		if errors.Is(err, unix.ESRCH) {
			err = &goneError{pid: p.id.PID}
		}
		return &SignalError{PID: p.id.PID, Signal: sig, Err: err}
	}
	return nil
}

// pidfdExited polls a pidfd without blocking. A pidfd is readable once its
// process has exited, whether or not it has been reaped (pidfd_open(2)).
func pidfdExited(fd int) (bool, error) {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("procs: poll pidfd: %w", err)
		}
		return n > 0 && fds[0].Revents != 0, nil
	}
}

func (p *Process) alive() bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return false
	}
	if p.pidfd >= 0 {
		exited, err := pidfdExited(p.pidfd)
		return err == nil && !exited
	}
	return checkIdentity(p.id) == nil
}

func (p *Process) wait(ctx context.Context) error {
	p.mu.RLock()
	if p.closed {
		p.mu.RUnlock()
		return fmt.Errorf("procs: wait for %v: %w", p.id, ErrClosed)
	}
	if p.pidfd < 0 {
		p.mu.RUnlock()
		return p.waitProc(ctx)
	}
	// Poll a duplicate so that Close, which must not wait for a Wait that
	// may block for hours, can close the original at any time.
	fd, err := unix.FcntlInt(uintptr(p.pidfd), unix.F_DUPFD_CLOEXEC, 0)
	p.mu.RUnlock()
	if err != nil {
		return fmt.Errorf("procs: wait for %v: dup pidfd: %w", p.id, err)
	}
	defer unix.Close(fd)
	if exited, err := pidfdExited(fd); err != nil || exited {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("procs: wait for %v: %w", p.id, err)
	}

	// Block in poll(2) on the pidfd and an eventfd that a goroutine writes
	// to when ctx is done or the handle is closed: no timeouts, no loop.
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return fmt.Errorf("procs: wait for %v: eventfd: %w", p.id, err)
	}
	defer unix.Close(efd)
	stop := make(chan struct{})
	woken := make(chan struct{})
	go func() {
		defer close(woken)
		select {
		case <-ctx.Done():
		case <-p.done:
		case <-stop:
			return
		}
		var one [8]byte
		binary.NativeEndian.PutUint64(one[:], 1)
		unix.Write(efd, one[:]) // cannot fail short of a bug: the counter starts at 0
	}()
	// The goroutine writes to efd; it must be finished before efd is closed.
	defer func() { close(stop); <-woken }()

	fds := []unix.PollFd{
		{Fd: int32(fd), Events: unix.POLLIN},
		{Fd: int32(efd), Events: unix.POLLIN},
	}
	for {
		_, err := unix.Poll(fds, -1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("procs: wait for %v: poll: %w", p.id, err)
		}
		if fds[0].Revents != 0 {
			return nil // exited (POLLIN), or reaped (POLLHUP on newer kernels)
		}
		if fds[1].Revents != 0 {
			break
		}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("procs: wait for %v: %w", p.id, err)
	}
	return fmt.Errorf("procs: wait for %v: %w", p.id, ErrClosed)
}

// Backoff of the fallback Wait, which has no event to block on.
const (
	waitPollMin = time.Millisecond
	waitPollMax = 50 * time.Millisecond
)

// waitProc is Wait without a pidfd: it re-reads /proc/PID/stat with
// exponential backoff from 1ms up to 50ms between reads, so a process is seen
// gone at most ~50ms late while a long wait costs ~20 reads a second.
func (p *Process) waitProc(ctx context.Context) error {
	delay := waitPollMin
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("procs: wait for %v: %w", p.id, ctx.Err())
		case <-p.done:
			return fmt.Errorf("procs: wait for %v: %w", p.id, ErrClosed)
		case <-timer.C:
		}
		if err := checkIdentity(p.id); err != nil {
			if errors.Is(err, ErrGone) {
				return nil
			}
			return fmt.Errorf("procs: wait for %v: %w", p.id, err)
		}
		timer.Reset(delay)
		delay = min(2*delay, waitPollMax)
	}
}

func waitExited(pid int) error {
	for {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}
