package procs

import (
	"errors"
	"fmt"
	"io/fs"
	"syscall"
)

var (
	// ErrGone reports a process that has exited (a zombie counts as exited).
	// Errors wrapping it from Info, StartTime, Children, Listeners, Environ,
	// FDTarget and Open also match fs.ErrNotExist, so StartTime fits
	// pidfile.Probe.
	ErrGone = errors.New("procs: process is gone")
	// ErrReused reports a pid that now belongs to a different process than the
	// identity that was asked for.
	ErrReused = errors.New("procs: pid was reused by another process")
	// ErrClosed reports a method called on a Process after Close, and a Wait
	// interrupted by Close.
	ErrClosed = errors.New("procs: process handle is closed")
)

// goneError says that pid has exited. It matches both ErrGone and
// fs.ErrNotExist with errors.Is.
type goneError struct {
	pid      int
	zombie   bool
	released bool // reaped, its /proc entry still readable for a moment
}

func (e *goneError) Error() string {
	if e.zombie {
		return fmt.Sprintf("procs: pid %d: process is gone (zombie, not yet reaped)", e.pid)
	}
	if e.released {
		return fmt.Sprintf("procs: pid %d: process is gone (reaped, being released)", e.pid)
	}
	return fmt.Sprintf("procs: pid %d: process is gone", e.pid)
}

func (e *goneError) Is(target error) bool { return target == ErrGone || target == fs.ErrNotExist }

// isGoneErrno reports the errors the kernel gives for a /proc/PID entry of a
// process that no longer exists: ENOENT once it is reaped, ESRCH when it is
// being torn down while we read (proc(5)).
func isGoneErrno(err error) bool {
	return errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ESRCH)
}

// SignalError is a failed signal to a process.
type SignalError struct {
	PID    int
	Signal syscall.Signal
	Err    error
}

func (e *SignalError) Error() string {
	return fmt.Sprintf("procs: signal %v to pid %d: %v", e.Signal, e.PID, e.Err)
}

func (e *SignalError) Unwrap() error { return e.Err }
