package upgrade

import (
	"context"
	"fmt"
	"syscall"

	"github.com/batonhq/baton/procs"
)

// stop stops a master in two phases and a last resort: Stop, Terminate
// after StopTimeout, SIGKILL after another; then whatever of workers is left.
func (m *Machine) stop(ctx context.Context, id procs.Identity, workers []procs.Identity) error {
	p, err := m.open(id)
	if err == nil {
		defer p.Close()
		for i, sig := range []syscall.Signal{m.flavor.Stop, m.flavor.Terminate, ForceKill} {
			if i > 0 {
				m.step("stop", "master %d still runs after %v: sending %s", id.PID, m.opts.StopTimeout, SignalName(sig))
			}
			if err := p.Signal(sig); err != nil {
				if gone(err) {
					break
				}
				return err
			}
			wctx, cancel := context.WithTimeout(ctx, m.opts.StopTimeout)
			err := p.Wait(wctx)
			cancel()
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if sig == ForceKill {
				return fmt.Errorf("master %d survived %s: %w", id.PID, SignalName(sig), err)
			}
		}
	} else if !gone(err) {
		return err
	}
	// Workers outlive a killed master (nginx's do): stop the ones pinned
	// before, by identity, all at once: the graceful Stop (a worker busy
	// with a request finishes it: a fast stop would reset the connection),
	// Terminate and ForceKill for those still there StopTimeout apart.
	var left []Process
	for _, w := range workers {
		if wp, err := m.sys.Open(w); err == nil {
			defer wp.Close()
			left = append(left, wp)
		}
	}
	for _, sig := range []syscall.Signal{m.flavor.Stop, m.flavor.Terminate, ForceKill} {
		if len(left) == 0 {
			break
		}
		for _, wp := range left {
			_ = wp.Signal(sig)
		}
		wctx, cancel := context.WithTimeout(ctx, m.opts.StopTimeout)
		var still []Process
		for _, wp := range left {
			if wp.Wait(wctx) != nil {
				still = append(still, wp)
			}
		}
		cancel()
		left = still
	}
	if len(left) > 0 {
		return fmt.Errorf("%d processes survived %s", len(left), SignalName(ForceKill))
	}
	return nil
}
