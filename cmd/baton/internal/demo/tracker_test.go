package demo

import (
	"bufio"
	"context"
	"errors"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestTracker starts a real child that starts a grandchild and then exits,
// as a master's new master outlives its parent: the tracker must know the
// grandchild from a scan made while its parent lived, keep it after the
// parent is gone, stop it, and then see nothing left.
func TestTracker(t *testing.T) {
	// sh prints the grandchild's pid, then waits for a line on stdin
	// before it exits, leaving the grandchild reparented.
	cmd := exec.Command("sh", "-c", "sleep 60 & echo $!; read x; exit 0")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	grandchild, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatalf("grandchild pid %q: %v", line, err)
	}
	t.Cleanup(func() { _ = syscall.Kill(grandchild, syscall.SIGKILL) })

	tr := newTracker()
	defer tr.close()
	if err := tr.scan(); err != nil {
		t.Fatal(err)
	}
	if got, want := pids(tr.alive()), []int{cmd.Process.Pid, grandchild}; !slices.Equal(got, sorted(want)) {
		t.Fatalf("tracked %v, want %v", got, sorted(want))
	}

	stdin.Close() // sh exits; the sleep is reparented
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if err := tr.scan(); err != nil {
		t.Fatal(err)
	}
	if got := pids(tr.alive()); !slices.Equal(got, []int{grandchild}) {
		t.Fatalf("tracked after the parent exited: %v, want [%d]", got, grandchild)
	}

	tr.signal(grandchild, syscall.SIGTERM)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if left := tr.waitGone(ctx, 5*time.Second); len(left) != 0 {
		t.Errorf("left after SIGTERM: %v", left)
	}
}

// TestTrackerSignalsOnlyTracked checks that a pid the tracker never found
// below the demo is not signalled, as a stale pid file naming another
// program must not make the demo signal it.
func TestTrackerSignalsOnlyTracked(t *testing.T) {
	tr := newTracker()
	defer tr.close()
	if err := tr.scan(); err != nil {
		t.Fatal(err)
	}
	// Started after the scan: a process of ours, but unknown to tr.
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	tr.signal(cmd.Process.Pid, syscall.SIGKILL)
	// The first fatal signal decides how a process died: had tr sent KILL,
	// this TERM would come too late to be the cause.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("sleep: %v, want killed by a signal", err)
	}
	if ws := ee.Sys().(syscall.WaitStatus); ws.Signal() != syscall.SIGTERM {
		t.Errorf("untracked process died of %v, want SIGTERM (the test's own)", ws.Signal())
	}
}

func sorted(s []int) []int {
	slices.Sort(s)
	return s
}
