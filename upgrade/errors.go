package upgrade

import "errors"

// Sentinels the CLI maps to exit codes. Every error the Machine returns
// wraps exactly one of them (ErrIllegalTransition counts as bad input) and
// starts with it: the package prefix appears once, there. What it wraps
// adds context without another prefix ("upgrade: failed and rolled back:
// verify: check http://127.0.0.1/health: status 500").
var (
	// ErrBadInput: bad usage or input; nothing was signalled or changed (exit 2).
	ErrBadInput = errors.New("upgrade: bad input")
	// ErrNotRunning: the pid file names no live master; nothing was touched (exit 2).
	ErrNotRunning = errors.New("upgrade: no live master")
	// ErrPreflight: a preflight check failed; nothing was touched (exit 2).
	ErrPreflight = errors.New("upgrade: preflight failed")
	// ErrLocked: another orchestrator holds the lock (exit 3).
	ErrLocked = errors.New("upgrade: another upgrade holds the lock")
	// ErrUpgradePending: an upgrade is already under way (exit 3).
	ErrUpgradePending = errors.New("upgrade: an upgrade is pending")
	// ErrRolledBack: the upgrade failed and was rolled back; the old
	// generation serves (exit 1).
	ErrRolledBack = errors.New("upgrade: failed and rolled back")
	// ErrNotReloaded: a configuration reload (Machine.Reload) did not
	// happen: the master refused the configuration or started no new
	// workers in time; it keeps serving as it did (exit 1).
	ErrNotReloaded = errors.New("upgrade: not reloaded")
	// ErrInconsistent: a step failed and no clean state could be restored,
	// or automatic rollback was off; Report.Advice says what to do (exit 4).
	ErrInconsistent = errors.New("upgrade: inconsistent state")
	// ErrTimeout is wrapped by waits that ran out of time, inside the
	// error of one of the sentinels above; the message says after how long
	// and what was awaited ("timed out after 30s: ...").
	ErrTimeout = errors.New("upgrade: timed out")
)
