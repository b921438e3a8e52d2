package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/batonhq/baton/upgrade"
)

func TestUpgradeExitCodes(t *testing.T) {
	for _, tc := range []struct {
		name     string
		err      error
		mutating bool
		want     int
	}{
		{name: "bad-input", err: fmt.Errorf("%w: x", upgrade.ErrBadInput), want: exitUsage},
		{name: "not-running", err: fmt.Errorf("%w: x", upgrade.ErrNotRunning), mutating: true, want: exitUsage},
		{name: "preflight", err: fmt.Errorf("%w: x", upgrade.ErrPreflight), mutating: true, want: exitUsage},
		{name: "illegal-transition", err: &upgrade.TransitionError{From: upgrade.Idle, Event: upgrade.EvCommit}, mutating: true, want: exitUsage},
		{name: "locked", err: &upgrade.LockError{Path: "p", PID: 42}, mutating: true, want: exitBusy},
		{name: "pending", err: fmt.Errorf("%w: x", upgrade.ErrUpgradePending), mutating: true, want: exitBusy},
		{name: "rolled-back", err: fmt.Errorf("%w: x", upgrade.ErrRolledBack), mutating: true, want: exitFailed},
		{name: "inconsistent", err: fmt.Errorf("%w: x", upgrade.ErrInconsistent), mutating: true, want: exitInconsistent},
		{name: "unknown-after-signals", err: errors.New("x"), mutating: true, want: exitInconsistent},
		{name: "unknown-status", err: errors.New("x"), want: exitFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := exitCode(tc.err, tc.mutating); got != tc.want {
				t.Errorf("exitCode(%v) = %d, want %d", tc.err, got, tc.want)
			}
		})
	}
}

// TestUpgradeCLIRefuses runs the real CLI on bad input: exit 2, nothing
// written but what it reports.
func TestUpgradeCLIRefuses(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pid")
	os.WriteFile(garbage, []byte("not a pid\n"), 0o644)
	for _, tc := range []struct {
		name string
		args []string
		want int
		say  string
	}{
		{name: "no-pidfile", args: []string{"upgrade", "start"}, want: exitUsage, say: "pidfile"},
		{name: "bad-check", args: []string{"upgrade", "start", "--pidfile", garbage, "--check", "ftp://x"}, want: exitUsage, say: "want http://"},
		{name: "bad-flavor", args: []string{"upgrade", "start", "--pidfile", garbage, "--flavor", "apache"}, want: exitUsage, say: "unknown flavor"},
		{name: "garbage-pidfile", args: []string{"upgrade", "start", "--pidfile", garbage}, want: exitUsage, say: "malformed"},
		{name: "missing-pidfile-commit", args: []string{"upgrade", "commit", "--pidfile", filepath.Join(dir, "none.pid")}, want: exitUsage, say: "missing"},
		{name: "extra-argument", args: []string{"upgrade", "rollback", "--pidfile", garbage, "now"}, want: exitUsage, say: "unexpected argument"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			code := runWith(append([]string{"baton"}, tc.args...), &bytes.Buffer{}, &stderr)
			if code != tc.want || !strings.Contains(stderr.String(), tc.say) {
				t.Errorf("exit %d, stderr %q; want %d saying %q", code, stderr.String(), tc.want, tc.say)
			}
		})
	}
	if _, err := os.Stat(upgrade.JournalPath(garbage)); err == nil {
		t.Error("a journal was written for a refused upgrade")
	}
}

// runWith is run with the app's output captured: the code main would exit
// with, and the error main would print on stderr.
func runWith(args []string, stdout, stderr *bytes.Buffer) int {
	app := newApp()
	app.Writer, app.ErrWriter = stdout, stderr
	err := app.Run(args)
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(stderr, "baton: %v\n", err)
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	if isUsageError(err) {
		return exitUsage
	}
	return exitFailed
}
