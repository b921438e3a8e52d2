package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// interruptSignals are the signals that interrupt an upgrade verb: Ctrl-C,
// what timeout(1), Ansible's async timeout and systemd send, and a closed
// terminal.
var interruptSignals = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP}

// interrupts turns the first interrupt signal into an instruction to abort
// safely and the second into one to stop at once.
type interrupts struct {
	// Soft is cancelled at the first signal: the verb aborts safely (see
	// the upgrade package's doc, Interrupts).
	Soft context.Context
	// Hard is cancelled at the second: the verb stops at once.
	Hard context.Context

	mu   sync.Mutex
	got  []string
	stop func()
}

// watchInterrupts starts watching; Stop ends it. Each signal is reported
// on errw as it arrives.
func watchInterrupts(parent context.Context, errw io.Writer, verb string) *interrupts {
	soft, cancelSoft := context.WithCancel(parent)
	hard, cancelHard := context.WithCancel(parent)
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, interruptSignals...)
	done := make(chan struct{})
	in := &interrupts{Soft: soft, Hard: hard}
	in.stop = func() {
		signal.Stop(ch)
		close(done)
		cancelSoft()
		cancelHard()
	}
	go func() {
		for {
			select {
			case <-done:
				return
			case s := <-ch:
				in.mu.Lock()
				in.got = append(in.got, signalName(s))
				n := len(in.got)
				in.mu.Unlock()
				if n == 1 {
					fmt.Fprintf(errw, "baton: %s: %s aborts safely (the old generation keeps serving); send it again to stop at once\n", signalName(s), verb)
					cancelSoft()
					continue
				}
				fmt.Fprintf(errw, "baton: %s again: stopping at once\n", signalName(s))
				cancelHard()
			}
		}
	}()
	return in
}

// Signals lists the interrupt signals received, in order.
func (in *interrupts) Signals() []string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]string(nil), in.got...)
}

// Stop stops watching; a second call is a no-op.
func (in *interrupts) Stop() {
	if in.stop != nil {
		in.stop()
		in.stop = nil
	}
}

func signalName(s os.Signal) string {
	if sig, ok := s.(syscall.Signal); ok {
		switch sig {
		case syscall.SIGINT:
			return "SIGINT"
		case syscall.SIGTERM:
			return "SIGTERM"
		case syscall.SIGHUP:
			return "SIGHUP"
		}
	}
	return s.String()
}
