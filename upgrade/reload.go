package upgrade

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/batonhq/baton/upgrade/statusfile"
)

// ReloadMode is what Reload does.
type ReloadMode uint8

const (
	// ReloadAuto is the checked binary upgrade when the running master's
	// binary was replaced on disk (MasterObs.BinaryGone: a package upgrade,
	// a new build installed over it), else a configuration reload.
	ReloadAuto ReloadMode = iota
	// ReloadConfig is always a configuration reload.
	ReloadConfig
	// ReloadBinary is always the checked binary upgrade (Start with Commit).
	ReloadBinary
)

var reloadModeNames = [...]string{"auto", "config", "binary"}

func (r ReloadMode) String() string {
	if int(r) < len(reloadModeNames) {
		return reloadModeNames[r]
	}
	return fmt.Sprintf("ReloadMode(%d)", r)
}

// ParseReloadMode accepts "auto", "config" and "binary"; an error wraps
// ErrBadInput.
func ParseReloadMode(s string) (ReloadMode, error) {
	for i, n := range reloadModeNames {
		if s == n {
			return ReloadMode(i), nil
		}
	}
	return 0, fmt.Errorf("%w: reload mode %q: want %s", ErrBadInput, s, strings.Join(reloadModeNames[:], ", "))
}

// Reload is what "systemctl reload" means for a master (the shipped units'
// ExecReload=), chosen by Options.Reload: the checked binary upgrade
// (Start with Commit: the binary on disk is new, so a new master must run
// it), or a configuration reload, the cheap reload that certbot, Ansible
// handlers and "nginx -s reload" habits expect after a configuration
// change.
//
// The configuration reload runs the Preflight command (the configuration
// test, "nginx -t"), sends the flavor's Reload signal (HUP) and waits, up
// to SpawnTimeout, until the master has new workers (a baton master: its
// status file counts the reload and its new generation is ready), then
// until the checks pass. A failed Preflight signals nothing (ErrPreflight);
// a master that refuses the configuration (baton's says why in its status
// file) or starts no new workers in time keeps serving as it did
// (ErrNotReloaded); checks still failing at SpawnTimeout, the new
// configuration live, are ErrInconsistent: there is no old configuration
// to go back to.
func (m *Machine) Reload(ctx context.Context) (*Report, error) {
	return m.command(ctx, "reload", m.reloadVerb)
}

// reloadVerb is Reload's body: it chooses, then runs the binary upgrade
// (startVerb) or configReload.
func (m *Machine) reloadVerb(ctx context.Context, v Verdict) error {
	cur, err := m.serving(v)
	if err != nil {
		return err
	}
	mode, why := m.opts.Reload, "forced (--mode "+m.opts.Reload.String()+")"
	if mode == ReloadAuto {
		mode, why = ReloadConfig, fmt.Sprintf("the binary of master %d, %s, is the one on disk", cur.ID.PID, cur.Binary)
		if cur.BinaryGone {
			mode, why = ReloadBinary, fmt.Sprintf("the binary of master %d, %s, was replaced on disk", cur.ID.PID, cur.Binary)
		}
	}
	if mode == ReloadBinary {
		m.step("reload", "%s: a checked binary upgrade", why)
		m.opts.Commit = true
		return m.startVerb(ctx, v)
	}
	m.step("reload", "%s: a configuration reload (%s)", why, SignalName(m.flavor.Reload))
	return m.configReload(ctx, cur)
}

// configReload is the configuration reload of master cur.
func (m *Machine) configReload(ctx context.Context, cur *MasterObs) error {
	if m.opts.Preflight != "" {
		if err := m.runPreflight(ctx); err != nil {
			if interrupted(ctx) {
				err = fmt.Errorf("%w before anything was signalled: %w", ErrInterrupted, err)
			}
			return err
		}
	}
	if interrupted(ctx) {
		return fmt.Errorf("%w before anything was signalled", ErrInterrupted)
	}
	if err := m.signal(cur.ID, m.flavor.Reload); err != nil {
		return fmt.Errorf("%w: %s to master %d: %w", ErrNotRunning, SignalName(m.flavor.Reload), cur.ID.PID, err)
	}
	m.step("reload", "sent %s to master %d; waiting up to %v for its new workers", SignalName(m.flavor.Reload), cur.ID.PID, m.opts.SpawnTimeout)
	var now *MasterObs
	err := waitFor(ctx, m.opts.SpawnTimeout, m.wake, func() (bool, string, error) {
		var done bool
		var reason string
		var err error
		now, done, reason, err = m.reloaded(cur)
		return done, reason, err
	})
	if errors.Is(err, errMasterDied) {
		return fmt.Errorf("%w: %w", ErrInconsistent, err)
	}
	if err != nil {
		return fmt.Errorf("%w: master %d: %w; it serves as it did", ErrNotReloaded, cur.ID.PID, err)
	}
	m.step("reload", "master %d reloaded: workers %v", cur.ID.PID, now.Workers)
	if len(m.opts.Checks) == 0 {
		return nil
	}
	err = waitFor(ctx, m.opts.SpawnTimeout, nil, func() (bool, string, error) {
		if err := m.checkAll(ctx); err != nil {
			return false, err.Error(), nil
		}
		return true, "", nil
	})
	if err != nil {
		m.rep.Advice = "the new configuration is live: fix it and reload again"
		return fmt.Errorf("%w: master %d reloaded, but the checks fail: %w", ErrInconsistent, cur.ID.PID, err)
	}
	m.step("reload", "%d checks pass", len(m.opts.Checks))
	return nil
}

// errMasterDied: the master died while it reloaded.
var errMasterDied = errors.New("the master died")

// reloaded looks at master cur after the Reload signal: done once it has
// new workers (a baton master: a new generation ready), an error when it
// died or refused the configuration.
func (m *Machine) reloaded(cur *MasterObs) (now *MasterObs, done bool, reason string, err error) {
	st, ok := m.running(cur.ID)
	if !ok {
		return nil, false, "", fmt.Errorf("%w: master %s, during the reload", errMasterDied, cur.ID)
	}
	now = m.master(st, nil)
	if m.flavor.StatusFile {
		done, reason, err := reloadedBaton(cur.Status, now.Status, cur.ID.PID)
		return now, done, reason, err
	}
	for _, w := range now.Workers {
		if !slices.Contains(cur.Workers, w) {
			return now, true, "", nil
		}
	}
	return now, false, fmt.Sprintf("master %d has no new worker yet (a master that refuses the configuration keeps its workers: see its error log)", cur.ID.PID), nil
}

// reloadedBaton tells from a baton master's status files, before and now,
// whether it reloaded: a new generation ready, or a refusal.
func reloadedBaton(before, now *statusfile.Master, pid int) (bool, string, error) {
	if now == nil {
		return false, fmt.Sprintf("master %d publishes no status", pid), nil
	}
	var b statusfile.Master
	if before != nil {
		b = *before
	}
	if now.Reloads > b.Reloads && now.ReloadError != "" {
		return false, "", fmt.Errorf("refused: %s", now.ReloadError)
	}
	if now.Generation > b.Generation && now.Ready {
		return true, "", nil
	}
	if now.Generation > b.Generation {
		return false, fmt.Sprintf("master %d's generation %d is not ready yet%s", pid, now.Generation, crashLoopNote(now)), nil
	}
	return false, fmt.Sprintf("master %d has not started a new generation yet", pid), nil
}

func crashLoopNote(s *statusfile.Master) string {
	if s.CrashLoop {
		return " (its workers keep exiting: the previous generation serves until it is)"
	}
	return ""
}
