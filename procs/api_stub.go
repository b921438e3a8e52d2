package procs

// This file is the agreed API of package procs. The bodies are placeholders
// until the implementation lands; signatures change only by agreement.

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"
)

var (
	// ErrGone reports a process that has exited (a zombie counts as exited).
	ErrGone = errors.New("procs: process is gone")
	// ErrReused reports a pid that now belongs to a different process than the
	// identity that was asked for.
	ErrReused = errors.New("procs: pid was reused by another process")
)

// Identity names one process for its whole life.
type Identity struct {
	PID   int    `json:"pid"`
	Start uint64 `json:"start"` // clock ticks since boot, /proc/PID/stat field 22
}

// String formats the identity as "PID@START".
func (id Identity) String() string { return fmt.Sprintf("%d@%d", id.PID, id.Start) }

// Role tells a master from a worker where the command line says which it is.
type Role uint8

const (
	RoleUnknown Role = iota
	RoleMaster
	RoleWorker
)

// Stat is what /proc says about one process.
type Stat struct {
	PID        int
	PPID       int
	State      byte // R, S, D, Z, T, ...
	UID        int  // real uid
	Start      uint64
	StartTime  time.Time // wall-clock start, accurate to a clock tick
	Comm       string
	Exe        string // /proc/PID/exe with " (deleted)" removed
	ExeDeleted bool   // the executable was replaced or removed on disk
	Cwd        string // /proc/PID/cwd with " (deleted)" removed
	CwdDeleted bool
	Cmdline    []string
}

// Identity returns the process's identity.
func (s Stat) Identity() Identity { return Identity{PID: s.PID, Start: s.Start} }

// Zombie reports whether the process has exited but is not yet reaped.
func (s Stat) Zombie() bool { return s.State == 'Z' }

// Role classifies the process from its command line (nginx, unicorn,
// gunicorn and baton titles).
func (s Stat) Role() Role { return RoleUnknown }

// Info reads /proc/PID. A missing process is an error wrapping ErrGone.
func Info(pid int) (Stat, error) { return Stat{}, errors.ErrUnsupported }

// StartTime returns when pid started; an error wraps ErrGone when it is gone
// or a zombie. Its signature fits pidfile.Probe.
func StartTime(pid int) (time.Time, error) { return time.Time{}, errors.ErrUnsupported }

// Children lists the live (non-zombie) children of pid.
func Children(pid int) ([]Stat, error) { return nil, errors.ErrUnsupported }

// ChildrenByRole lists the live children of pid whose command line says role.
func ChildrenByRole(pid int, role Role) ([]Stat, error) { return nil, errors.ErrUnsupported }

// Listener is one listening socket a process holds.
type Listener struct {
	Inode   uint64 `json:"inode"`
	FD      int    `json:"fd"`
	Network string `json:"network"` // "tcp", "tcp6" or "unix"
	Addr    string `json:"addr"`    // "127.0.0.1:8080", "[::1]:8080", "/run/app.sock", "@abstract"
}

// Listeners returns the listening sockets pid holds, ordered by fd.
func Listeners(pid int) ([]Listener, error) { return nil, errors.ErrUnsupported }

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

// Process is a handle on one process identity. Its methods are safe for
// concurrent use; Close may be called more than once.
type Process struct{ id Identity }

// Open pins the identity of the live process pid.
func Open(pid int) (*Process, error) { return nil, errors.ErrUnsupported }

// OpenIdentity opens id, failing with ErrReused when pid now belongs to a
// different process and ErrGone when it has exited.
func OpenIdentity(id Identity) (*Process, error) { return nil, errors.ErrUnsupported }

// Identity returns the pinned identity.
func (p *Process) Identity() Identity { return p.id }

// PID returns the pinned pid.
func (p *Process) PID() int { return p.id.PID }

// Signal sends sig; a gone process yields a *SignalError wrapping ErrGone.
func (p *Process) Signal(sig syscall.Signal) error { return errors.ErrUnsupported }

// Alive reports whether the process still runs (not exited, not a zombie).
func (p *Process) Alive() bool { return false }

// Wait blocks until the process is gone or ctx is done (then it returns an
// error wrapping ctx.Err()).
func (p *Process) Wait(ctx context.Context) error { return errors.ErrUnsupported }

// Close releases the pidfd.
func (p *Process) Close() error { return nil }
