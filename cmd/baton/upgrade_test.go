package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

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
		{name: "not-reloaded", err: fmt.Errorf("%w: x", upgrade.ErrNotReloaded), mutating: true, want: exitFailed},
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
		env  string // NAME=VALUE set for the run
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
		{name: "preflight-timeout-zero", args: []string{"upgrade", "start", "--pidfile", garbage, "--preflight-timeout", "0"}, want: exitUsage, say: "--preflight-timeout 0s: want a positive duration"},
		{name: "preflight-timeout-negative", args: []string{"upgrade", "start", "--pidfile", garbage, "--preflight-timeout", "-1s"}, want: exitUsage, say: "--preflight-timeout -1s: want a positive duration"},
		{name: "reload-bad-mode", args: []string{"reload", "--pidfile", garbage, "--mode", "both"}, want: exitUsage, say: "reload mode \"both\""},
		{name: "reload-garbage-pidfile", args: []string{"reload", "--pidfile", garbage}, want: exitUsage, say: "malformed"},
		{name: "reload-no-commit-flag", args: []string{"reload", "--pidfile", garbage, "--commit"}, want: exitUsage, say: "commit"},
		{name: "preflight-timeout-env", env: "BATON_PREFLIGHT_TIMEOUT=-5s", args: []string{"upgrade", "start", "--pidfile", garbage}, want: exitUsage, say: "--preflight-timeout -5s: want a positive duration"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if name, val, ok := strings.Cut(tc.env, "="); ok {
				t.Setenv(name, val)
			}
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
// with, its stdout and its stderr.
func runWith(args []string, stdout, stderr *bytes.Buffer) int {
	return runIO(args, stdout, stderr)
}

// TestStartVerifyFor: --verify-for 0 (and the old -1s) is no verify period;
// left alone it is the default.
func TestStartVerifyFor(t *testing.T) {
	for _, tc := range []struct {
		name     string
		args     []string
		noVerify bool
		verify   string
	}{
		{name: "default", verify: defaultVerifyFor.String()},
		{name: "set", args: []string{"--verify-for", "5s"}, verify: "5s"},
		{name: "zero", args: []string{"--verify-for", "0"}, noVerify: true, verify: "0s"},
		{name: "negative", args: []string{"--verify-for", "-1s"}, noVerify: true, verify: "-1s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got upgrade.Options
			read := func(c *cli.Context) error {
				var err error
				got, err = startOptions(c)
				return err
			}
			code, stderr := captureOptions(t, upgradeStartCommand(), read, append([]string{"--pidfile", "a.pid"}, tc.args...)...)
			if code != exitOK {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			if got.NoVerify != tc.noVerify || got.VerifyFor.String() != tc.verify {
				t.Errorf("NoVerify %v, VerifyFor %v; want %v, %s", got.NoVerify, got.VerifyFor, tc.noVerify, tc.verify)
			}
			if got.SpawnTimeout != defaultSpawnTimeout || got.DrainTimeout != defaultDrainTimeout || got.StopTimeout != defaultStopTimeout || got.Flavor != defaultFlavor {
				t.Errorf("defaults: %+v", got)
			}
		})
	}
}
