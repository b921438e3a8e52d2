package demo

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// progress writes progress lines and, when live, a counter line below them
// that the next progress line replaces. Safe for concurrent use. Write
// errors are not reported: a closed output stops the demo through the
// caller's ctx (SIGPIPE), not here.
type progress struct {
	mu      sync.Mutex
	w       io.Writer
	tty     bool
	liveFn  func() string
	shown   bool
	stopped chan struct{}
}

// newProgress writes to w; tty says that w is a terminal, which may show
// the live counter.
func newProgress(w io.Writer, tty bool) *progress {
	return &progress{w: w, tty: tty}
}

// linef prints one or more lines above the live counter.
func (o *progress) linef(format string, args ...any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.clearLocked()
	fmt.Fprintf(o.w, format+"\n", args...)
	o.drawLocked()
}

// live shows fn's line as a live counter, refreshed a few times a second, on
// a terminal only; nil removes it. A second call replaces the first.
func (o *progress) live(fn func() string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.stopped != nil {
		close(o.stopped)
		o.stopped = nil
	}
	o.clearLocked()
	o.liveFn = fn
	if fn == nil || !o.tty {
		o.liveFn = nil
		return
	}
	stop := make(chan struct{})
	o.stopped = stop
	o.drawLocked()
	go o.refresh(stop)
}

// refresh redraws the live counter until stop is closed.
func (o *progress) refresh(stop chan struct{}) {
	// A display refresh, not a wait for anything.
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
			o.mu.Lock()
			if o.stopped == stop {
				o.clearLocked()
				o.drawLocked()
			}
			o.mu.Unlock()
		}
	}
}

func (o *progress) clearLocked() {
	if o.shown {
		fmt.Fprint(o.w, "\r\033[K")
		o.shown = false
	}
}

func (o *progress) drawLocked() {
	if o.liveFn != nil && o.tty {
		fmt.Fprint(o.w, o.liveFn())
		o.shown = true
	}
}
