//go:build linux

package master_test

import (
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/batonhq/baton/pidfile"
	"github.com/batonhq/baton/upgrade/statusfile"
)

// TestSignals walks one master through every signal of the protocol and
// shows after each the processes, pid files, status file and listener inodes.
func TestSignals(t *testing.T) {
	h := newHarness(t, testOpts{Workers: 2}, "")
	h.start()
	pid := h.pid
	st := h.waitReady(pid)
	inode := st.Listeners[0].Inode

	t.Run("start", func(t *testing.T) {
		if got := pidInFile(t, h.opts.PIDFile); got != pid {
			t.Errorf("pid file holds %d, want the master %d", got, pid)
		}
		if st.Generation != 1 || len(workerPIDs(st, "ready")) != 2 || st.Parent != 0 || st.UpgradePending {
			t.Errorf("status = %+v, want generation 1 with 2 ready workers, no parent, nothing pending", st)
		}
		if got := listenerInodes(t, pid); !slices.Equal(got, []uint64{inode}) {
			t.Errorf("master holds listeners %v, status says %d", got, inode)
		}
		for _, w := range workerPIDs(st, "ready") {
			if got := listenerInodes(t, w); !slices.Contains(got, inode) {
				t.Errorf("worker %d holds %v, want the master's socket %d", w, got, inode)
			}
		}
		if got := children(t, pid); !slices.Equal(got, sorted(workerPIDs(st, "ready"))) {
			t.Errorf("master's children %v, status workers %v", got, workerPIDs(st, "ready"))
		}
		body := h.get(st, "/")
		if !strings.HasPrefix(body, "gen=1 ") {
			t.Errorf("answer %q, want generation 1", body)
		}
		h.waitFor("READY=1 to systemd", func() bool { return h.sd.said(pid, "READY=1") })
	})

	t.Run("TTIN", func(t *testing.T) {
		h.signal(pid, syscall.SIGTTIN)
		st = h.waitStatus(pid, "3 ready workers", func(s statusfile.Master) bool { return s.Ready && len(workerPIDs(s, "ready")) == 3 })
		if got := children(t, pid); len(got) != 3 {
			t.Errorf("children %v, want 3", got)
		}
	})

	t.Run("TTOU", func(t *testing.T) {
		before := workerPIDs(st, "ready")
		h.signal(pid, syscall.SIGTTOU)
		st = h.waitStatus(pid, "2 workers", func(s statusfile.Master) bool { return len(s.Workers) == 2 && s.Ready })
		h.waitFor("2 children", func() bool { return len(children(t, pid)) == 2 })
		if after := workerPIDs(st, "ready"); !slices.Equal(after, before[:2]) && !slices.Equal(sorted(after), sorted(before)[:2]) {
			t.Logf("workers %v -> %v", before, after)
		}
	})

	t.Run("USR1", func(t *testing.T) {
		h.signal(pid, syscall.SIGUSR1)
		// Every worker counts it; ask each through its own pid: every
		// worker answers on the shared socket, so poll until all reported.
		seen := map[string]bool{}
		h.waitFor("USR1 counted by both workers", func() bool {
			w, n, _ := strings.Cut(strings.TrimSpace(h.get(st, "/usr1")), " ")
			if n == "usr1=1" {
				seen[w] = true
			}
			return len(seen) == 2
		})
	})

	t.Run("HUP", func(t *testing.T) {
		old := workerPIDs(st, "ready")
		h.signal(pid, syscall.SIGHUP)
		st = h.waitStatus(pid, "generation 2 ready, generation 1 gone", func(s statusfile.Master) bool {
			return s.Generation == 2 && s.Ready && len(s.Workers) == 2 && s.Workers[0].Generation == 2
		})
		for _, w := range old {
			h.waitGone(w)
		}
		if got := listenerInodes(t, pid); !slices.Equal(got, []uint64{inode}) {
			t.Errorf("after HUP the master holds %v, want %d", got, inode)
		}
		if body := h.get(st, "/"); !strings.HasPrefix(body, "gen=2 ") {
			t.Errorf("answer %q, want generation 2", body)
		}
		h.waitFor("RELOADING=1", func() bool { return h.sd.said(pid, "RELOADING=1") })
	})

	t.Run("WINCH", func(t *testing.T) {
		old := workerPIDs(st, "ready")
		h.signal(pid, syscall.SIGWINCH)
		st = h.waitStatus(pid, "no workers", func(s statusfile.Master) bool { return s.Draining && len(s.Workers) == 0 && !s.Ready })
		for _, w := range old {
			h.waitGone(w)
		}
		if got := children(t, pid); len(got) != 0 {
			t.Errorf("children %v after WINCH, want none", got)
		}
		if got := listenerInodes(t, pid); !slices.Equal(got, []uint64{inode}) {
			t.Errorf("after WINCH the master holds %v, want still %d", got, inode)
		}
	})

	t.Run("HUP-after-WINCH", func(t *testing.T) {
		h.signal(pid, syscall.SIGHUP)
		st = h.waitStatus(pid, "generation 3 ready", func(s statusfile.Master) bool { return s.Generation == 3 && s.Ready && !s.Draining })
		if body := h.get(st, "/"); !strings.HasPrefix(body, "gen=3 ") {
			t.Errorf("answer %q, want generation 3", body)
		}
	})

	var newPID int
	t.Run("USR2", func(t *testing.T) {
		h.signal(pid, syscall.SIGUSR2)
		h.waitFor("new pid file", func() bool {
			p := pidInFile(t, h.opts.PIDFile)
			newPID = p
			return p != 0 && p != pid
		})
		ns := h.waitReady(newPID)
		if got := pidInFile(t, pidfile.OldbinPath(h.opts.PIDFile)); got != pid {
			t.Errorf(".oldbin holds %d, want the old master %d", got, pid)
		}
		if ns.Parent != pid || !ns.UpgradePending || ns.Generation != 4 {
			t.Errorf("new master status %+v, want parent %d, upgrade pending, generation 4", ns, pid)
		}
		if ns.Listeners[0].Inode != inode || !slices.Equal(listenerInodes(t, newPID), []uint64{inode}) {
			t.Errorf("new master listens on %v, want the old socket %d", listenerInodes(t, newPID), inode)
		}
		os := h.waitStatus(pid, "upgrade pending", func(s statusfile.Master) bool { return s.UpgradePending })
		if len(workerPIDs(os, "ready")) != 2 {
			t.Errorf("old master's workers %v, want 2 still serving", os.Workers)
		}
		if !slices.Contains(children(t, pid), newPID) {
			t.Errorf("new master %d is not a child of the old %d", newPID, pid)
		}
		h.waitFor("MAINPID from the new master", func() bool { return h.sd.said(newPID, "MAINPID="+strconv.Itoa(newPID)) })
	})

	t.Run("USR2-while-pending", func(t *testing.T) {
		before := children(t, pid)
		h.signal(pid, syscall.SIGUSR2)
		h.signal(newPID, syscall.SIGUSR2)
		h.waitFor("both refusals logged", func() bool {
			data, _ := os.ReadFile(h.log)
			return strings.Count(string(data), "USR2 ignored: an upgrade is pending") >= 2
		})
		if got := children(t, pid); !slices.Equal(got, before) {
			t.Errorf("children of the old master %v -> %v", before, got)
		}
		if got := pidInFile(t, h.opts.PIDFile); got != newPID {
			t.Errorf("pid file holds %d, want %d", got, newPID)
		}
	})

	t.Run("WINCH-old", func(t *testing.T) {
		h.signal(pid, syscall.SIGWINCH)
		h.waitStatus(pid, "old master drained", func(s statusfile.Master) bool { return len(s.Workers) == 0 })
		ns, _ := h.statusOf(newPID)
		if body := h.get(ns, "/"); !strings.HasPrefix(body, "gen=4 ") {
			t.Errorf("answer %q, want the new generation 4", body)
		}
	})

	t.Run("QUIT-old", func(t *testing.T) {
		h.signal(pid, syscall.SIGQUIT)
		h.waitGone(pid)
		if _, err := os.Stat(pidfile.OldbinPath(h.opts.PIDFile)); !os.IsNotExist(err) {
			t.Errorf(".oldbin after the old master quit: %v", err)
		}
		if _, err := os.Stat(statusfile.Path(h.opts.PIDFile, pid)); !os.IsNotExist(err) {
			t.Errorf("old status file after quit: %v", err)
		}
		if got := pidInFile(t, h.opts.PIDFile); got != newPID {
			t.Errorf("pid file holds %d, want the new master %d", got, newPID)
		}
		ns := h.waitStatus(newPID, "committed", func(s statusfile.Master) bool { return !s.UpgradePending && s.Ready })
		if !slices.Equal(listenerInodes(t, newPID), []uint64{inode}) {
			t.Errorf("new master listens on %v, want %d", listenerInodes(t, newPID), inode)
		}
		if h.sd.said(pid, "STOPPING=1") {
			t.Errorf("the old master told systemd STOPPING=1 after handing over: %v", h.sd)
		}
		_ = ns
	})

	t.Run("QUIT-new", func(t *testing.T) {
		ns, _ := h.statusOf(newPID)
		workers := workerPIDs(ns, "ready")
		h.signal(newPID, syscall.SIGQUIT)
		h.waitGone(newPID)
		for _, w := range workers {
			h.waitGone(w)
		}
		if _, err := os.Stat(h.opts.PIDFile); !os.IsNotExist(err) {
			t.Errorf("pid file after the last master quit: %v", err)
		}
		if _, err := os.Stat(statusfile.Path(h.opts.PIDFile, newPID)); !os.IsNotExist(err) {
			t.Errorf("status file after quit: %v", err)
		}
		if !h.sd.said(newPID, "STOPPING=1") {
			t.Errorf("the last master did not tell systemd STOPPING=1: %v", h.sd)
		}
	})
}

func sorted(s []int) []int {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// TestFastStop: TERM and INT stop the workers with TERM at once, then the
// master removes its pid file, status file and socket file.
func TestFastStop(t *testing.T) {
	for _, tc := range []struct {
		name string
		sig  syscall.Signal
	}{
		{name: "TERM", sig: syscall.SIGTERM},
		{name: "INT", sig: syscall.SIGINT},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The graceful stop signal is one the workers shrug off (they
			// count USR1): only a fast stop's TERM ends them before the
			// stop timeout's KILL.
			h := newHarness(t, testOpts{Workers: 2, Listen: []string{"unix:app.sock"}, StopSignal: "USR1", StopTimeout: time.Minute}, "")
			h.start()
			st := h.waitReady(h.pid)
			sock := st.Listeners[0].Addr
			h.signal(h.pid, tc.sig)
			for _, w := range workerPIDs(st, "ready") {
				h.waitGone(w)
			}
			h.waitGone(h.pid)
			for _, p := range []string{h.opts.PIDFile, statusfile.Path(h.opts.PIDFile, h.pid), sock} {
				if _, err := os.Stat(p); !os.IsNotExist(err) {
					t.Errorf("%s after a fast stop: %v", p, err)
				}
			}
			if !h.sd.said(h.pid, "STOPPING=1") {
				t.Errorf("no STOPPING=1: %v", h.sd)
			}
			data, _ := os.ReadFile(h.log)
			if !strings.Contains(string(data), "action=fast-stop") || strings.Contains(string(data), "did not stop in time") {
				t.Errorf("log does not show a prompt fast stop")
			}
		})
	}
}
