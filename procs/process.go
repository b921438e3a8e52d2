package procs

import (
	"context"
	"sync"
	"syscall"
)

// Process is a handle on one process identity. Its methods are safe for
// concurrent use; Close may be called more than once. The zero value is not
// usable: get one from Open or OpenIdentity.
type Process struct {
	id Identity

	// mu guards pidfd and closed: Signal, Alive and Wait hold it shared
	// while they use the descriptor (Wait only to duplicate it), Close holds
	// it exclusively, so Close never closes a descriptor in use (its number
	// could be reused by another open meanwhile).
	mu     sync.RWMutex
	pidfd  int // -1 when the kernel has no pidfds
	closed bool
	// done is closed by Close and wakes pending Waits.
	done chan struct{}
}

// Open pins the identity of the live process pid. A missing or zombie
// process is an error wrapping ErrGone.
func Open(pid int) (*Process, error) { return open(pid) }

// OpenIdentity opens id, failing with ErrReused when pid now belongs to a
// different process and ErrGone when it has exited.
func OpenIdentity(id Identity) (*Process, error) { return openIdentity(id) }

// Identity returns the pinned identity.
func (p *Process) Identity() Identity { return p.id }

// PID returns the pinned pid.
func (p *Process) PID() int { return p.id.PID }

// Signal sends sig (0 checks that the process exists and may be signalled). A
// gone or zombie process yields a *SignalError wrapping ErrGone; after Close
// it wraps ErrClosed.
func (p *Process) Signal(sig syscall.Signal) error { return p.signal(sig) }

// Alive reports whether the process still runs (not exited, not a zombie).
// It is false after Close.
func (p *Process) Alive() bool { return p.alive() }

// Wait blocks until the process is gone (exited, zombie or not) or ctx is done
// (then it returns an error wrapping ctx.Err()) or the handle is closed (an
// error wrapping ErrClosed). It returns nil once the process is gone. Any
// number of Waits may run at once; the process need not be a child.
func (p *Process) Wait(ctx context.Context) error { return p.wait(ctx) }

// WaitExited blocks until pid, a child of the caller, has exited, without
// reaping it (waitid(2) WEXITED|WNOWAIT): its pid stays its own, a zombie,
// until the caller reaps it (os/exec's Wait), so a process group it led can
// still be signalled by that pid in between.
func WaitExited(pid int) error { return waitExited(pid) }

// WaitGone blocks until every process in ids has exited (or was gone
// already) or ctx is done, waiting on each by pidfd.
func WaitGone(ctx context.Context, ids []Identity) {
	for _, id := range ids {
		p, err := OpenIdentity(id)
		if err != nil {
			continue // gone already
		}
		p.Wait(ctx)
		p.Close()
	}
}

// Close releases the pidfd and wakes pending Waits with ErrClosed. Later
// calls return nil.
func (p *Process) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	if p.done != nil {
		close(p.done)
	}
	return p.closeFD()
}
