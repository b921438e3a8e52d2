//go:build linux

package master

import (
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/batonhq/baton/procs"
	"github.com/batonhq/baton/upgrade/statusfile"
)

// What the master tells systemd besides readiness and its main pid
// (sd_notify(3), through notify.go):
//
//   - STATUS=, one line saying what the master is doing (statusLine), which
//     "systemctl status" shows: sent when it changes and again every
//     sdRefresh.
//   - WATCHDOG=1, when the unit sets WatchdogSec=: every quarter of
//     WATCHDOG_USEC, from the master's event loop, so that a loop that
//     hangs stops the pings and systemd restarts the unit.
//
// Only the master systemd may take as the unit's main process speaks: one
// whose old master still runs (an upgrade not committed) says nothing, as
// the unit's NotifyAccess=main would drop it. When the old master exits
// the new one becomes the main process through PIDFile=, but systemd reads
// a notification before it handles the old master's exit, so the new
// master's first words may still be dropped: the refresh repeats them, and
// the old master's last line ("upgraded: new master N serves") is true in
// the meantime. The pings leave no gap of more than half the watchdog
// period: the old master pings until it exits, the new one at once and
// then every quarter period.

// sdRefresh is how often the STATUS= line is sent again.
const sdRefresh = 5 * time.Second

// sdFacts is what the STATUS= line says, taken from the master's state.
type sdFacts struct {
	Stopping   bool
	Child      int  // the new master started on USR2, while alive; 0: none
	RolledBack int  // the new master a rollback gave up; 0: none
	Reloading  bool // HUP under way: a new generation not ready yet
	Draining   bool // WINCH: no workers wanted
	Generation int  // the newest generation started
	Ready      bool // the current generation is ready
	CrashLoop  bool
	Workers    int // live workers, every generation
}

// statusLine is the STATUS= line for f: what the master does, first word
// first ("serving", "upgrading", "draining", "rolling back", "rolled
// back", "reloading", "starting", "stopping", "upgraded", "drained",
// "crash loop").
func statusLine(f sdFacts) string {
	switch {
	case f.Stopping && f.Child != 0:
		return fmt.Sprintf("upgraded: new master %d serves; this master exits", f.Child)
	case f.Stopping:
		return fmt.Sprintf("stopping: %d workers finishing", f.Workers)
	case f.Child != 0 && f.RolledBack == f.Child && f.Ready:
		return fmt.Sprintf("rolling back: generation %d serves again; new master %d stopping", f.Generation, f.Child)
	case f.Child != 0 && f.Reloading:
		return fmt.Sprintf("rolling back: generation %d starting; new master %d to stop", f.Generation, f.Child)
	case f.Child != 0 && !f.Draining:
		return fmt.Sprintf("upgrading: new master %d starting", f.Child)
	case f.Child != 0 && f.Workers > 0:
		return fmt.Sprintf("draining: %d old workers finishing; new master %d serves", f.Workers, f.Child)
	case f.Child != 0:
		return fmt.Sprintf("upgrading: new master %d serves; this master waits for the commit", f.Child)
	case f.CrashLoop:
		return fmt.Sprintf("crash loop: the workers of generation %d keep exiting", f.Generation)
	case f.Draining:
		return "drained: no workers (WINCH); HUP starts them again"
	case f.RolledBack != 0 && f.Ready:
		return fmt.Sprintf("rolled back: generation %d serves, new master %d given up", f.Generation, f.RolledBack)
	case f.RolledBack != 0:
		return fmt.Sprintf("rolling back: generation %d starting, new master %d given up", f.Generation, f.RolledBack)
	case f.Reloading:
		return fmt.Sprintf("reloading: generation %d starting", f.Generation)
	case !f.Ready:
		return fmt.Sprintf("starting: generation %d", f.Generation)
	}
	return fmt.Sprintf("serving: generation %d, %d workers", f.Generation, f.Workers)
}

// sdFacts gathers statusLine's facts; st is the master's status as of now.
func (m *master) sdFacts(st statusfile.Master) sdFacts {
	return sdFacts{
		Stopping:   m.stopping,
		Child:      m.childPID,
		RolledBack: m.rolledBack,
		Reloading:  m.reloading,
		Draining:   m.draining,
		Generation: m.genNum,
		Ready:      st.Ready,
		CrashLoop:  st.CrashLoop,
		Workers:    len(m.workers),
	}
}

// mayNotify reports whether systemd may take this master's word: no old
// master of it runs.
func (m *master) mayNotify() bool { return m.parent == nil }

// syncSystemd sends the STATUS= line when it changed; st is the master's
// status as of now.
func (m *master) syncSystemd(st statusfile.Master) {
	line := statusLine(m.sdFacts(st))
	if line == m.sdLast || !m.mayNotify() {
		return
	}
	m.sdLast = line
	m.sd.notify("STATUS=" + line)
}

// sdTick repeats the STATUS= line and pings the watchdog.
func (m *master) sdTick() {
	if !m.mayNotify() || m.sdLast == "" {
		return
	}
	state := "STATUS=" + m.sdLast
	if m.watchdog > 0 {
		state += "\nWATCHDOG=1"
	}
	m.sd.notify(state)
}

// sdTicker returns the channel that paces sdTick (nil, never ready, when
// NOTIFY_SOCKET is unset) and its stop function.
func (m *master) sdTicker() (<-chan time.Time, func()) {
	if m.getenv(EnvNotifySocket) == "" {
		return nil, func() {}
	}
	every := sdRefresh
	if m.watchdog > 0 {
		every = min(every, m.watchdog/4)
	}
	t := time.NewTicker(every)
	return t.C, t.Stop
}

// watchdogPeriod reads WATCHDOG_USEC, meant for this master when
// WATCHDOG_PID is unset or names it (systemd started it) or the old master
// that started it (watchdogEnv): 0 when no watchdog is asked for.
func watchdogPeriod(getenv func(string) string, pid, parent int) time.Duration {
	usec, err := strconv.ParseInt(getenv(EnvWatchdogUsec), 10, 64)
	if err != nil || usec <= 0 {
		return 0
	}
	if p := getenv(EnvWatchdogPID); p != "" && p != strconv.Itoa(pid) && (parent == 0 || p != strconv.Itoa(parent)) {
		return 0
	}
	return time.Duration(usec) * time.Microsecond
}

// watchdogEnv sets the watchdog variables of the master started on USR2:
// this master's period, naming this master as the one that passed it on;
// none when it has no watchdog.
func (m *master) watchdogEnv(env []string) []string {
	env = procs.DropEnv(env, func(name string) bool { return name == EnvWatchdogUsec || name == EnvWatchdogPID })
	if m.watchdog <= 0 {
		return env
	}
	env = setVar(env, EnvWatchdogUsec, strconv.FormatInt(m.watchdog.Microseconds(), 10))
	return setVar(env, EnvWatchdogPID, strconv.Itoa(os.Getpid()))
}
