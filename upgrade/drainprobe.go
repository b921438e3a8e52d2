package upgrade

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/batonhq/baton/procs"
)

// drainProbe bounds how long, after Drain, baton looks for a sign that a
// master it cannot judge from its facts honoured it: the master passes the
// signal on to its workers at once, and each retitles or exits within
// milliseconds.
const drainProbe = time.Second

// drainIgnored says why the old master will ignore Drain, "" when it will
// honour it. The master's facts decide where they can (nginx: a session
// leader is daemonized; NGINX= in its environment, or the journal, says an
// upgrade started it). Where they cannot — an nginx started by an upgrade
// baton did not drive (by hand, or Debian's init script): its title has
// overwritten the environment that said so — the workers, told to drain
// just before, answer: one gone or titled Flavor.DrainTitle within
// drainProbe shows Drain was honoured.
func (m *Machine) drainIgnored(ctx context.Context, old *MasterObs, workers []procs.Identity) string {
	fl := m.flavor
	if fl.DrainIgnored == nil || fl.DrainStep != 0 {
		return ""
	}
	facts := m.sys.Facts(old.ID.PID)
	facts.Inherited = facts.Inherited || m.j.OldByUpgrade
	why := fl.DrainIgnored(facts)
	if why == "" || fl.DrainTitle == "" || len(workers) == 0 {
		return why
	}
	var sign string
	// A worker's exit wakes the wait (pidfds); a new title is polled for.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	_ = waitFor(ctx, drainProbe, m.wakeOnExit(wctx, workers), func() (bool, string, error) {
		for _, id := range workers {
			st, err := m.sys.Info(id.PID)
			switch {
			case err != nil || st.Identity() != id || st.Zombie():
				sign = fmt.Sprintf("worker %d exited", id.PID)
			case strings.Contains(strings.Join(st.Cmdline, " "), fl.DrainTitle):
				sign = fmt.Sprintf("worker %d %s", id.PID, fl.DrainTitle)
			default:
				continue
			}
			return true, "", nil
		}
		return false, "no worker shows the drain", nil
	})
	if sign == "" {
		return why
	}
	m.step("drain", "master %d honours %s (%s): an upgrade started it", old.ID.PID, SignalName(fl.Drain), sign)
	return ""
}
