//go:build linux

package master_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/batonhq/baton/upgrade/statusfile"
)

// saidPrefix lists the lines pid sent that start with prefix, in order.
func (f *fakeSystemd) saidPrefix(pid int, prefix string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, m := range f.msgs {
		if m.pid != pid {
			continue
		}
		for _, line := range strings.Split(m.text, "\n") {
			if strings.HasPrefix(line, prefix) {
				out = append(out, line)
			}
		}
	}
	return out
}

// TestSystemdStatusAndWatchdog: through an upgrade, the old master tells
// systemd what it does (STATUS=) and pings the watchdog until it exits; the
// new master says nothing while the old one runs (it is not the main pid
// yet), then takes over both, with the watchdog passed on. No worker gets
// the watchdog's variables.
func TestSystemdStatusAndWatchdog(t *testing.T) {
	h := newHarness(t, testOpts{Workers: 1}, "")
	// 400ms: a ping every 100ms.
	h.extraEnv = []string{"WATCHDOG_USEC=400000"}
	h.start()
	old := h.pid
	h.waitFor("the old master's serving status", func() bool {
		return slices.Contains(h.sd.saidPrefix(old, "STATUS="), "STATUS=serving: generation 1, 1 workers")
	})
	h.waitFor("watchdog pings from the old master", func() bool { return len(h.sd.saidPrefix(old, "WATCHDOG=1")) >= 3 })

	st := h.waitReady(old)
	var env []string
	if err := json.Unmarshal([]byte(h.get(st, "/env")), &env); err != nil {
		t.Fatal(err)
	}
	for _, kv := range env {
		if strings.HasPrefix(kv, "WATCHDOG_") {
			t.Errorf("worker sees %s", kv)
		}
	}

	h.signal(old, syscall.SIGUSR2)
	var nw int
	h.waitFor("new pid file", func() bool {
		nw = pidInFile(t, h.opts.PIDFile)
		return nw != 0 && nw != old
	})
	h.waitReady(nw)
	h.signal(old, syscall.SIGWINCH)
	h.waitStatus(old, "old workers gone", func(s statusfile.Master) bool { return len(s.Workers) == 0 })
	h.waitFor("the parked status", func() bool {
		return slices.Contains(h.sd.saidPrefix(old, "STATUS="), fmt.Sprintf("STATUS=upgrading: new master %d serves; this master waits for the commit", nw))
	})
	if said := h.sd.saidPrefix(nw, "STATUS="); len(said) > 0 {
		t.Errorf("the new master spoke for the unit while the old one runs: %q", said)
	}
	if said := h.sd.saidPrefix(nw, "WATCHDOG="); len(said) > 0 {
		t.Errorf("the new master pinged while the old one runs: %q", said)
	}
	h.signal(old, syscall.SIGQUIT)
	h.waitGone(old)
	h.waitFor("the new master's serving status", func() bool {
		return slices.Contains(h.sd.saidPrefix(nw, "STATUS="), "STATUS=serving: generation 2, 1 workers")
	})
	h.waitFor("watchdog pings from the new master", func() bool { return len(h.sd.saidPrefix(nw, "WATCHDOG=1")) >= 3 })

	got := h.sd.saidPrefix(old, "STATUS=")
	for _, want := range []string{
		"STATUS=upgrading: new master " + strconv.Itoa(nw) + " starting",
		// Sent as WINCH is handled, before the worker's exit is.
		"STATUS=draining: 1 old workers finishing; new master " + strconv.Itoa(nw) + " serves",
		"STATUS=upgraded: new master " + strconv.Itoa(nw) + " serves; this master exits",
	} {
		if !slices.Contains(got, want) {
			t.Errorf("the old master never said %q; it said %q", want, got)
		}
	}
}
