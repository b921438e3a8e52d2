package demo

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"syscall"
	"time"

	"github.com/batonhq/baton/procs"
)

// tracker holds a handle on every process the demo started that it has
// seen. It finds them by walking down the process tree from the demo itself
// and from every process it holds, so a master whose parent exited (the new
// master of a committed upgrade, reparented to init) stays known as long as
// it was seen once before. The handles pin identities (pid plus start
// time): a pid the kernel gave to another program is never signalled. Not
// safe for concurrent use.
type tracker struct {
	self  int
	procs map[procs.Identity]*procs.Process
}

func newTracker() *tracker {
	return &tracker{self: os.Getpid(), procs: map[procs.Identity]*procs.Process{}}
}

// scan adds the live descendants of the demo and of every live tracked
// process. It returns the first error other than a process being gone; the
// processes found until then are tracked.
func (t *tracker) scan() error {
	type root struct {
		pid int
		p   *procs.Process // nil for the demo itself
	}
	queue := []root{{pid: t.self}}
	for _, p := range t.alive() {
		queue = append(queue, root{pid: p.PID(), p: p})
	}
	walked := map[int]bool{}
	for len(queue) > 0 {
		r := queue[0]
		queue = queue[1:]
		if walked[r.pid] {
			continue
		}
		walked[r.pid] = true
		kids, err := procs.Children(r.pid)
		// A pid is not reused while its process lives: if the handle still
		// runs after the listing, these are its children.
		if errors.Is(err, procs.ErrGone) || (r.p != nil && !r.p.Alive()) {
			continue
		}
		if err != nil {
			return fmt.Errorf("list the processes it started: %w", err)
		}
		for _, k := range kids {
			p, err := t.open(k.Identity())
			if err != nil {
				continue // exited since it was listed
			}
			queue = append(queue, root{pid: k.PID, p: p})
		}
	}
	return nil
}

// open returns the handle on id, opening it on first sight.
func (t *tracker) open(id procs.Identity) (*procs.Process, error) {
	if p, ok := t.procs[id]; ok {
		return p, nil
	}
	p, err := procs.OpenIdentity(id)
	if err != nil {
		return nil, err
	}
	t.procs[id] = p
	return p, nil
}

// alive returns the tracked processes that still run, by pid.
func (t *tracker) alive() []*procs.Process {
	var out []*procs.Process
	for _, p := range t.procs {
		if p.Alive() {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b *procs.Process) int { return a.PID() - b.PID() })
	return out
}

// signal sends sig to pid if it is a tracked live process; a pid file
// naming anything else never makes the demo signal it.
func (t *tracker) signal(pid int, sig syscall.Signal) {
	for _, p := range t.alive() {
		if p.PID() == pid {
			_ = p.Signal(sig) // gone meanwhile is fine: that was the point
		}
	}
}

// kill sends SIGKILL to every tracked live process.
func (t *tracker) kill() {
	for _, p := range t.alive() {
		_ = p.Signal(syscall.SIGKILL)
	}
}

// waitGone waits up to limit (and ctx) until no tracked process runs and a
// new scan finds no other, and returns the pids of those still there.
func (t *tracker) waitGone(ctx context.Context, limit time.Duration) []int {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for {
		_ = t.scan() // the caller's last scan reported any failure
		alive := t.alive()
		if len(alive) == 0 {
			return nil
		}
		for _, p := range alive {
			if err := p.Wait(ctx); err != nil {
				// ctx is done, or waiting failed: look again shortly
				// rather than spin.
				select {
				case <-ctx.Done():
				case <-time.After(25 * time.Millisecond):
				}
				break
			}
		}
		if ctx.Err() != nil {
			return pids(t.alive())
		}
	}
}

// close releases every handle.
func (t *tracker) close() {
	for id, p := range t.procs {
		p.Close()
		delete(t.procs, id)
	}
}

func pids(ps []*procs.Process) []int {
	out := make([]int, len(ps))
	for i, p := range ps {
		out[i] = p.PID()
	}
	return out
}

// cleanup stops the load and everything the demo started: QUIT to every
// master (graceful), then KILL to the first master's process group and to
// every tracked process still there. It has its own deadline so it runs
// after Ctrl-C too, and it removes the temporary directory.
func (d *demo) cleanup() error {
	d.stopLoad()
	defer d.tracked.close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	begin := time.Now()
	st := &Step{Name: "stop everything", Command: "kill -QUIT <masters>"}
	d.out.linef("▶ %s", st.Name)

	serr := d.tracked.scan()
	started := len(d.tracked.alive())
	cur, old := d.pids()
	for _, pid := range []int{cur, old, d.masterPID()} {
		d.tracked.signal(pid, syscall.SIGQUIT)
	}
	left := d.tracked.waitGone(ctx, 8*time.Second)
	if len(left) > 0 {
		d.out.linef("  %d processes still there after QUIT; killing them", len(left))
		if pid := d.masterPID(); pid > 0 {
			// The master's process group holds every process it started
			// that did not move to a group of its own.
			_ = syscall.Kill(-pid, syscall.SIGKILL)
		}
		d.tracked.kill()
		left = d.tracked.waitGone(ctx, 5*time.Second)
	}
	if d.exited != nil {
		select {
		case <-d.exited:
		case <-ctx.Done():
		}
	}
	st.Elapsed = time.Since(begin)
	return d.stopped(st, started, left, serr)
}

// stopped completes the cleanup's step and report and removes the
// temporary directory.
func (d *demo) stopped(st *Step, started int, left []int, scanErr error) error {
	d.rep.Stopped = started
	d.rep.Left = left
	var err error
	switch {
	case len(left) > 0:
		err = fmt.Errorf("demo: processes left behind: %v", left)
		d.fail(st, fmt.Sprintf("%d processes left: %v", len(left), left))
	case scanErr != nil:
		err = fmt.Errorf("demo: %w", scanErr)
		d.fail(st, scanErr.Error())
	default:
		d.pass(st, fmt.Sprintf("%d processes stopped, none left", started))
	}
	if rerr := os.RemoveAll(d.dir); rerr != nil && err == nil {
		err = fmt.Errorf("demo: %w", rerr)
	}
	return err
}
