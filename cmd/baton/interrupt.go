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

	mu       sync.Mutex
	got      []string
	finished bool // the verb has returned: what arrives now interrupts nothing
	stop     func()
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
				finished := in.finished
				if !finished {
					in.got = append(in.got, signalName(s))
				}
				n := len(in.got)
				in.mu.Unlock()
				if finished {
					// Still caught, so that it does not kill the process
					// before it reports what the verb did.
					fmt.Fprintf(errw, "baton: %s: arrived after %s had finished; ignored\n", signalName(s), verb)
					continue
				}
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

// Finish lists the interrupt signals received, in order, and makes any
// later one a no-op, reported as such: the verb has returned, and its
// report (which lists these) must agree with what stderr said.
func (in *interrupts) Finish() []string {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.finished = true
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
