//go:build !linux

package procs

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"
)

// Everything here reads /proc or uses Linux system calls; other systems get
// errors wrapping errors.ErrUnsupported so that the packages above still
// build there.

func errUnsupported(what string) error {
	return fmt.Errorf("procs: %s: %w", what, errors.ErrUnsupported)
}

func info(int) (Stat, error)                  { return Stat{}, errUnsupported("info") }
func startTime(int) (time.Time, error)        { return time.Time{}, errUnsupported("start time") }
func children(int) ([]Stat, error)            { return nil, errUnsupported("children") }
func group(int) ([]Identity, error)           { return nil, errUnsupported("process group") }
func listeners(int) ([]Listener, error)       { return nil, errUnsupported("listeners") }
func open(int) (*Process, error)              { return nil, errUnsupported("open") }
func waitExited(int) error                    { return errUnsupported("wait") }
func openIdentity(Identity) (*Process, error) { return nil, errUnsupported("open") }
func environ(Identity) ([]string, error)      { return nil, errUnsupported("environ") }
func fdTarget(Identity, int) (string, error)  { return "", errUnsupported("fd") }
func socketHolders([]uint64) ([]Identity, error) {
	return nil, errUnsupported("socket holders")
}

func (p *Process) closeFD() error { return nil }
func (p *Process) signal(sig syscall.Signal) error {
	return &SignalError{PID: p.id.PID, Signal: sig, Err: errUnsupported("signal")}
}
func (p *Process) alive() bool                { return false }
func (p *Process) wait(context.Context) error { return errUnsupported("wait") }

func watchTree([]int) (<-chan struct{}, func(), error) {
	return nil, nil, errUnsupported("process events")
}

func sockets(int) ([]Socket, error) { return nil, errUnsupported("sockets") }
