package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// lockedBuffer is a bytes.Buffer safe for the watcher's goroutine.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestInterruptAfterFinish: a signal that arrives once the verb has
// returned interrupts nothing: it is not added to the report's list, stderr
// does not say the verb aborts (it said so, with an empty "interrupted" in
// --json, when a commit finished just before the SIGTERM arrived:
// TestOperatorInterrupt/committing-SIGTERM), and the process is not killed
// by it before it reports.
func TestInterruptAfterFinish(t *testing.T) {
	var errw lockedBuffer
	in := watchInterrupts(context.Background(), &errw, "upgrade commit")
	defer in.Stop()
	if got := in.Finish(); len(got) != 0 {
		t.Fatalf("Finish before any signal: %q", got)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(errw.String(), "ignored"); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no word of the late signal on stderr: %q", errw.String())
		}
	}
	if want := "baton: SIGTERM: arrived after upgrade commit had finished; ignored\n"; errw.String() != want {
		t.Errorf("stderr %q, want %q", errw.String(), want)
	}
	if in.Soft.Err() != nil || in.Hard.Err() != nil {
		t.Error("a signal after the verb finished cancelled its contexts")
	}
	if got := in.Finish(); len(got) != 0 {
		t.Errorf("the late signal was recorded: %q", got)
	}
}
