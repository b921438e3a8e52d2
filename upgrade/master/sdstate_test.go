//go:build linux

package master

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// TestStatusLine: the STATUS= line names what the master is doing, by the
// word systemctl status shows first.
func TestStatusLine(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    sdFacts
		want string
	}{
		{"starting", sdFacts{Generation: 1, Workers: 2}, "starting: generation 1"},
		{"serving", sdFacts{Generation: 3, Ready: true, Workers: 2}, "serving: generation 3, 2 workers"},
		{"reloading", sdFacts{Generation: 4, Ready: false, Reloading: true, Workers: 4}, "reloading: generation 4 starting"},
		{"upgrade-spawn", sdFacts{Generation: 1, Ready: true, Child: 42, Workers: 2}, "upgrading: new master 42 starting"},
		{"upgrade-drain", sdFacts{Generation: 1, Child: 42, Draining: true, Workers: 1}, "draining: 1 old workers finishing; new master 42 serves"},
		{"upgrade-parked", sdFacts{Generation: 1, Child: 42, Draining: true}, "upgrading: new master 42 serves; this master waits for the commit"},
		{"commit", sdFacts{Generation: 1, Child: 42, Draining: true, Stopping: true}, "upgraded: new master 42 serves; this master exits"},
		{"rollback-starting", sdFacts{Generation: 3, Child: 42, Reloading: true, Workers: 2}, "rolling back: generation 3 starting; new master 42 to stop"},
		{"rollback-ready", sdFacts{Generation: 3, Child: 42, RolledBack: 42, Ready: true, Workers: 2}, "rolling back: generation 3 serves again; new master 42 stopping"},
		{"rolled-back", sdFacts{Generation: 3, RolledBack: 42, Ready: true, Workers: 2}, "rolled back: generation 3 serves, new master 42 given up"},
		{"new-master-died-drained", sdFacts{Generation: 3, RolledBack: 42, Workers: 1}, "rolling back: generation 3 starting, new master 42 given up"},
		{"crash-loop", sdFacts{Generation: 2, CrashLoop: true, Workers: 1}, "crash loop: the workers of generation 2 keep exiting"},
		{"drained", sdFacts{Generation: 2, Draining: true}, "drained: no workers (WINCH); HUP starts them again"},
		{"stopping", sdFacts{Generation: 2, Stopping: true, Workers: 2}, "stopping: 2 workers finishing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := statusLine(tc.f); got != tc.want {
				t.Errorf("statusLine(%+v) = %q, want %q", tc.f, got, tc.want)
			}
			if strings.Contains(statusLine(tc.f), "\n") {
				t.Errorf("a STATUS= line holds a newline")
			}
		})
	}
}

// TestWatchdogPeriod: WATCHDOG_USEC counts for the master systemd started
// (WATCHDOG_PID its pid, or unset) and for the one its old master started
// on USR2 (WATCHDOG_PID the old master's), never for anybody else.
func TestWatchdogPeriod(t *testing.T) {
	for _, tc := range []struct {
		name        string
		env         map[string]string
		pid, parent int
		want        time.Duration
	}{
		{"none", map[string]string{}, 10, 0, 0},
		{"systemd", map[string]string{"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "10"}, 10, 0, 2 * time.Second},
		{"no-pid", map[string]string{"WATCHDOG_USEC": "500000"}, 10, 0, 500 * time.Millisecond},
		{"from-old-master", map[string]string{"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "10"}, 20, 10, 2 * time.Second},
		{"someone-else", map[string]string{"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "7"}, 20, 10, 0},
		{"someone-else-no-parent", map[string]string{"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "7"}, 20, 0, 0},
		{"garbage", map[string]string{"WATCHDOG_USEC": "soon"}, 10, 0, 0},
		{"zero", map[string]string{"WATCHDOG_USEC": "0"}, 10, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := watchdogPeriod(func(k string) string { return tc.env[k] }, tc.pid, tc.parent); got != tc.want {
				t.Errorf("watchdogPeriod = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestWatchdogEnv: the master started on USR2 gets this master's period and
// pid, or no watchdog variables at all.
func TestWatchdogEnv(t *testing.T) {
	env := []string{"PATH=/bin", "WATCHDOG_USEC=1", "WATCHDOG_PID=1"}
	m := &master{}
	if got := m.watchdogEnv(env); !slices.Equal(got, []string{"PATH=/bin"}) {
		t.Errorf("without a watchdog: %q", got)
	}
	m.watchdog = 3 * time.Second
	got := m.watchdogEnv(env)
	if !slices.Contains(got, "WATCHDOG_USEC=3000000") || len(got) != 3 || !strings.HasPrefix(got[2], "WATCHDOG_PID=") {
		t.Errorf("with a 3s watchdog: %q", got)
	}
}
