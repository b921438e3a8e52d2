package upgrade

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrInterrupted: the command was interrupted (its context was cancelled:
// SIGINT, SIGTERM or SIGHUP in the CLI) before anything was signalled; the
// masters are untouched (exit 2).
var ErrInterrupted = errors.New("upgrade: interrupted")

// interrupted reports whether ctx was cancelled (not timed out by a wait of
// the machine's own).
func interrupted(ctx context.Context) bool {
	return ctx.Err() != nil && !errors.Is(context.Cause(ctx), context.DeadlineExceeded)
}

// abortBound is the longest the work an interrupt leaves may take: the old
// workers back (SpawnTimeout), the drained ones gone (DrainTimeout), the
// new master stopped in three phases and the pid file restored
// (4 × StopTimeout), and one round of checks.
func (m *Machine) abortBound() time.Duration {
	return m.opts.SpawnTimeout + m.opts.DrainTimeout + 4*m.opts.StopTimeout + DefaultCheckTimeout
}

// detached returns a context for work that must finish although ctx may be
// cancelled: it keeps ctx's values, ends after abortBound, and ends at once
// when Options.Hard is done. cancel releases it.
func (m *Machine) detached(ctx context.Context) (context.Context, context.CancelFunc) {
	d, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.abortBound())
	if m.opts.Hard != nil {
		stop := context.AfterFunc(m.opts.Hard, cancel)
		return d, func() { stop(); cancel() }
	}
	return d, cancel
}

// hardStopped reports whether a second interrupt ended the work.
func (m *Machine) hardStopped() bool {
	return m.opts.Hard != nil && m.opts.Hard.Err() != nil
}

// stoppedAdvice tells how to finish what a second interrupt left.
func (m *Machine) stoppedAdvice(verb string) string {
	return fmt.Sprintf("stopped at a second interrupt: run 'baton upgrade %s --pidfile %s' to finish", verb, m.opts.Pidfile)
}
