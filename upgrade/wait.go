package upgrade

import (
	"context"
	"fmt"
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
// It re-checks at once when wake receives, and otherwise after a backoff
// growing from pollMin to pollMax. A timeout is an error wrapping
// ErrTimeout with the last reason cond gave; a done ctx wraps ctx.Err().
func waitFor(ctx context.Context, timeout time.Duration, wake <-chan struct{}, cond func() (done bool, reason string, err error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	delay := pollMin
	var reason string
	for {
		done, why, err := cond()
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		reason = why
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			if ctx.Err() == context.DeadlineExceeded {
				return &timeoutError{after: timeout, reason: reason}
			}
			return fmt.Errorf("%s: %w", reason, ctx.Err())
		case <-wake:
			t.Stop()
		case <-t.C:
			delay = min(delay*2, pollMax)
		}
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
