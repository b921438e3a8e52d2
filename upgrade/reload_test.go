package upgrade

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/batonhq/baton/upgrade/statusfile"
)

// reloadMachine is fakeMachine with a reload mode.
func reloadMachine(t *testing.T, f *fakeSys, mode ReloadMode) *Machine {
	t.Helper()
	m := fakeMachine(t, f)
	m.opts.Reload = mode
	return m
}

// oldMaster is the master the fake pid file names, and its workers.
func (f *fakeSys) oldMaster(t *testing.T) (int, []int) {
	t.Helper()
	pid, err := strconv.Atoi(strings.TrimSpace(readFile(t, f.pidfile)))
	if err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return pid, f.workersOf(pid)
}

// TestReloadChooses: "systemctl reload" is a configuration reload (HUP,
// new workers, the same master) while the running binary is the one on
// disk, and the checked binary upgrade once it was replaced; --mode forces
// either.
func TestReloadChooses(t *testing.T) {
	for _, tc := range []struct {
		name     string
		mode     ReloadMode
		replaced bool
		binary   bool // want the binary upgrade
	}{
		{name: "auto-same-binary", mode: ReloadAuto},
		{name: "auto-replaced-binary", mode: ReloadAuto, replaced: true, binary: true},
		{name: "config-forced", mode: ReloadConfig, replaced: true},
		{name: "binary-forced", mode: ReloadBinary, binary: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFakeSys(t)
				old, workers := f.oldMaster(t)
				f.procs[old].stat.ExeDeleted = tc.replaced
				rep, err := reloadMachine(t, f, tc.mode).Reload(t.Context())
				if err != nil {
					t.Fatalf("reload: %v", err)
				}
				if rep.Command != "reload" {
					t.Errorf("report command %q", rep.Command)
				}
				now, nowWorkers := f.oldMaster(t)
				sigs := strings.Join(f.signalsTo(old), ",")
				if tc.binary {
					if now == old || sigs != "USR2,WINCH,QUIT" || rep.State != Committed {
						t.Errorf("binary upgrade: master %d -> %d, old master got %q, state %s", old, now, sigs, rep.State)
					}
					return
				}
				if now != old || sigs != "HUP" {
					t.Errorf("configuration reload: master %d -> %d, it got %q; want the same master, HUP", old, now, sigs)
				}
				for _, w := range nowWorkers {
					if slices.Contains(workers, w) {
						t.Errorf("worker %d outlived the reload", w)
					}
				}
				if rep.Journal != nil {
					t.Errorf("a configuration reload wrote the upgrade journal: %+v", rep.Journal)
				}
			})
		})
	}
}

// TestReloadRefused: a master that starts no new workers after HUP (nginx
// refusing its configuration) fails the reload at SpawnTimeout exactly,
// with the master serving as it did.
func TestReloadRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeSys(t)
		f.refusesHup = true
		old, workers := f.oldMaster(t)
		start := time.Now()
		_, err := reloadMachine(t, f, ReloadAuto).Reload(t.Context())
		if !errors.Is(err, ErrNotReloaded) || !errors.Is(err, ErrTimeout) {
			t.Fatalf("reload: %v, want a not-reloaded timeout", err)
		}
		if d := time.Since(start); d != 30*time.Second {
			t.Errorf("failed after %v of fake time, want the 30s spawn timeout", d)
		}
		if now, nowWorkers := f.oldMaster(t); now != old || !slices.Equal(nowWorkers, workers) {
			t.Errorf("master %d workers %v after a refused reload, want %d %v", now, nowWorkers, old, workers)
		}
	})
}

// TestReloadPreflight: a failed configuration test signals nothing.
func TestReloadPreflight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeSys(t)
		m := reloadMachine(t, f, ReloadConfig)
		m.opts.Preflight = "nginx -t"
		m.sys.Run = func(context.Context, string) ([]byte, error) {
			return []byte("nginx: [emerg] unexpected \"}\""), errors.New("exit status 1")
		}
		old, _ := f.oldMaster(t)
		_, err := m.Reload(t.Context())
		if !errors.Is(err, ErrPreflight) || !strings.Contains(err.Error(), "unexpected") {
			t.Fatalf("reload: %v, want ErrPreflight with the test's output", err)
		}
		if sigs := f.signalsTo(old); len(sigs) > 0 {
			t.Errorf("the master got %v after a failed configuration test", sigs)
		}
	})
}

func TestParseReloadMode(t *testing.T) {
	for _, m := range []ReloadMode{ReloadAuto, ReloadConfig, ReloadBinary} {
		if got, err := ParseReloadMode(m.String()); err != nil || got != m {
			t.Errorf("ParseReloadMode(%q) = %v, %v", m, got, err)
		}
	}
	if _, err := ParseReloadMode("both"); !errors.Is(err, ErrBadInput) {
		t.Errorf("ParseReloadMode(both): %v, want ErrBadInput", err)
	}
}

// TestReloadedBaton: a baton master has reloaded once a newer generation is
// ready; a refusal it counts fails the wait at once.
func TestReloadedBaton(t *testing.T) {
	before := &statusfile.Master{Generation: 2, Ready: true, Reloads: 1}
	for _, tc := range []struct {
		name    string
		now     *statusfile.Master
		done    bool
		refused bool
	}{
		{name: "no-status", now: nil},
		{name: "not-yet", now: &statusfile.Master{Generation: 2, Ready: true, Reloads: 1}},
		{name: "starting", now: &statusfile.Master{Generation: 3, Reloads: 2}},
		{name: "ready", now: &statusfile.Master{Generation: 3, Ready: true, Reloads: 2}, done: true},
		{name: "refused", now: &statusfile.Master{Generation: 2, Ready: true, Reloads: 2, ReloadError: "configuration rejected: bad"}, refused: true},
		{name: "old-refusal", now: &statusfile.Master{Generation: 2, Ready: true, Reloads: 1, ReloadError: "an earlier one"}},
		{name: "master-without-counter", now: &statusfile.Master{Generation: 3, Ready: true}, done: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			done, reason, err := reloadedBaton(before, tc.now, 42)
			if done != tc.done || (err != nil) != tc.refused {
				t.Errorf("reloadedBaton = %v, %q, %v; want done %v, refused %v", done, reason, err, tc.done, tc.refused)
			}
			if !done && err == nil && reason == "" {
				t.Errorf("waiting without a reason")
			}
		})
	}
}
