package upgrade

import (
	"context"
	"fmt"
	"sync"
	"syscall"
	"time"
)

// Backoff bounds of waitFor. Polling is the fallback where no event exists
// (a master's worker count, a health check); pid files also wake the wait
// through inotify and processes through their pidfd.
const (
	pollMin = 5 * time.Millisecond
	pollMax = 200 * time.Millisecond
)

// waitFor calls cond until it returns done, an error, or timeout passes.
// It re-checks when wake receives, and otherwise after a backoff growing
// from pollMin to pollMax. A timeout is an error wrapping ErrTimeout with
// the last reason cond gave; a done ctx wraps ctx.Err().
//
// A wake re-checks at once if cond's last call used less than idleMin of
// CPU time; otherwise not before as much time again has passed since it
// returned. Events can come faster than a look takes (a master forking 64
// workers wakes the spawn wait at each fork, and each look reads every
// child): looking back to back would take a whole CPU from the processes
// it waits for. This way the looks take at most half of one. CPU time,
// not wall time: a look starved of CPU by those processes (64 Go programs
// booting at once) lasts long but costs little, and waiting as long again
// would only make the wait late.
func waitFor(ctx context.Context, timeout time.Duration, wake <-chan struct{}, cond func() (done bool, reason string, err error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	delay := pollMin
	var reason string
	for {
		began := cpuTime()
		done, why, err := cond()
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		took, ended := cpuTime()-began, time.Now()
		reason = why
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return waitEnded(ctx, timeout, reason)
		case <-wake:
			t.Stop()
			if rest := took - time.Since(ended); took >= idleMin && rest > 0 && !sleepCtx(ctx, rest) {
				return waitEnded(ctx, timeout, reason)
			}
		case <-t.C:
			delay = min(delay*2, pollMax)
		}
	}
}

// idleMin is the least CPU time of a look after which a wake waits as
// long again.
const idleMin = 2 * time.Millisecond

// cpuTime is the CPU time the process has used (user and system): the
// waits' goroutines are most of what it does while it waits. A variable
// for tests.
var cpuTime = func() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// waitEnded is waitFor's error once ctx is done.
func waitEnded(ctx context.Context, timeout time.Duration, reason string) error {
	if ctx.Err() == context.DeadlineExceeded {
		return &timeoutError{after: timeout, reason: reason}
	}
	return fmt.Errorf("%s: %w", reason, ctx.Err())
}

// sleepCtx sleeps for d; false when ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// mergeWakes returns a channel that receives when one of chans does
// (coalesced, as each source is), and a function that stops forwarding. A
// nil source never receives.
func mergeWakes(chans ...<-chan struct{}) (<-chan struct{}, func()) {
	out := make(chan struct{}, 1)
	done := make(chan struct{})
	var wg sync.WaitGroup
	for _, ch := range chans {
		if ch == nil {
			continue
		}
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				case <-ch:
					select {
					case out <- struct{}{}:
					default:
					}
				}
			}
		})
	}
	var once sync.Once
	return out, func() {
		once.Do(func() {
			close(done)
			wg.Wait()
		})
	}
}

// timeoutError is a wait that ran out of time: it says after how long and
// what it was waiting for, and matches ErrTimeout without repeating its
// package prefix (it leaves the package inside another sentinel's error).
type timeoutError struct {
	after  time.Duration
	reason string
}

func (e *timeoutError) Error() string {
	return fmt.Sprintf("timed out after %v: %s", e.after, e.reason)
}

func (e *timeoutError) Unwrap() error { return ErrTimeout }
