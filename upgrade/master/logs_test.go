//go:build linux

package master_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/batonhq/baton/procs"
)

func init() { helpers["helper-chatter"] = helperChatter }

// envStray names a file: helperChatter then first starts a process in a
// session of its own that holds its stdout open, and appends its pid there.
const envStray = "CHATTER_STRAY"

// helperChatter is a worker that writes numbered lines, one a millisecond,
// alternately to stdout and stderr, each line in two writes (a line split
// between workers would show), saying how many USR1 it got, until it is
// stopped; its last line ends in " last".
func helperChatter() int {
	if path := os.Getenv(envStray); path != "" {
		stray := exec.Command("sleep", "600")
		stray.Stdout, stray.SysProcAttr = os.Stdout, &syscall.SysProcAttr{Setsid: true}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err == nil {
			err = stray.Start()
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "helper-chatter: stray:", err)
			return 1
		}
		fmt.Fprintln(f, stray.Process.Pid)
		f.Close()
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGQUIT, syscall.SIGINT, syscall.SIGUSR1)
	if _, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
		fmt.Fprintln(os.Stderr, "helper-chatter: notify:", err)
		return 1
	}
	head := fmt.Sprintf("worker=%s pid=%d ", os.Getenv("BATON_WORKER"), os.Getpid())
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	usr1 := 0
	for seq := 0; ; seq++ {
		w := []*os.File{os.Stdout, os.Stderr}[seq%2]
		select {
		case s := <-sigs:
			if s != syscall.SIGUSR1 {
				fmt.Fprintf(w, "%sseq=%d usr1=%d last\n", head, seq, usr1)
				return 0
			}
			usr1++
		case <-tick.C:
		}
		fmt.Fprint(w, head)
		fmt.Fprintf(w, "seq=%d usr1=%d\n", seq, usr1)
	}
}

var chatterLine = regexp.MustCompile(`^worker=\d+ pid=(\d+) seq=(\d+) usr1=(\d+)( last)?$`)

// chatter is one line of helperChatter's.
type chatter struct {
	pid, seq, usr1 int
	last           bool
}

// readChatter reads a worker log: helperChatter's lines, and the master's
// own JSON lines when the log is shared with it (json). Any other line is
// an error: a torn or spliced line.
func readChatter(t *testing.T, path string, json bool) (lines []chatter, master []map[string]any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	for _, l := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		if l == "" {
			continue
		}
		if m := chatterLine.FindStringSubmatch(l); m != nil {
			pid, _ := strconv.Atoi(m[1])
			seq, _ := strconv.Atoi(m[2])
			n, _ := strconv.Atoi(m[3])
			lines = append(lines, chatter{pid: pid, seq: seq, usr1: n, last: m[4] != ""})
			continue
		}
		var rec map[string]any
		if !json || decodeJSON(l, &rec) != nil {
			t.Fatalf("%s: line %q is neither a worker's nor the master's", filepath.Base(path), l)
		}
		master = append(master, rec)
	}
	return lines, master
}

func decodeJSON(s string, v any) error { return json.Unmarshal([]byte(s), v) }

// TestWorkerLogReopen: the workers' output goes to --worker-log-file line
// by line; logrotate moves it and sends USR1; the master reopens it and the
// workers' output after their USR1 is in the new file, none lost, none out
// of order, no worker restarted; at the end the master writes out what the
// workers left in their pipes, even when a process that left the workers'
// groups holds a pipe open. Shared with the master's JSON log, every line
// is whole.
func TestWorkerLogReopen(t *testing.T) {
	for _, tc := range []struct {
		name   string
		shared bool // --log-file is the worker log, --log-format json
		stray  bool // each worker leaves a process in a session of its own on its stdout
	}{
		{name: "own-file"},
		{name: "shared-with-json-log", shared: true},
		{name: "stray-holds-pipe", stray: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			helpersUsed.Store("helper-chatter", true)
			bin, err := os.Executable()
			if err != nil {
				t.Fatal(err)
			}
			h := newHarness(t, testOpts{Workers: 2, Command: []string{bin, "helper-chatter"}}, bin)
			path := filepath.Join(h.dir, "workers.log")
			h.opts.WorkerLog = path
			if tc.shared {
				h.opts.LogFile, h.opts.LogFormat = path, "json"
			}
			strays := filepath.Join(h.dir, "strays")
			if tc.stray {
				h.extraEnv = append(h.extraEnv, envStray+"="+strays)
				t.Cleanup(func() { killStrays(t, strays) })
			}
			h.start()
			st := h.waitReady(h.pid)
			workers := workerPIDs(st, "ready")
			has := func(p string, ok func(chatter) bool) bool {
				lines, _ := readChatter(t, p, tc.shared)
				for _, w := range workers {
					if !slices.ContainsFunc(lines, func(c chatter) bool { return c.pid == w && ok(c) }) {
						return false
					}
				}
				return true
			}
			h.waitFor("both workers' lines", func() bool { return has(path, func(chatter) bool { return true }) })
			if err := os.Rename(path, path+".1"); err != nil {
				t.Fatal(err)
			}
			h.signal(h.pid, syscall.SIGUSR1)
			h.waitFor("both workers' lines after their USR1 in a new file", func() bool {
				return has(path, func(c chatter) bool { return c.usr1 == 1 })
			})
			now := h.waitReady(h.pid)
			if got := workerPIDs(now, "ready"); !slices.Equal(got, workers) {
				t.Errorf("workers %v after USR1, want %v still", got, workers)
			}
			for _, w := range now.Workers {
				if w.Restarts != 0 {
					t.Errorf("worker %d restarted %d times", w.PID, w.Restarts)
				}
			}
			h.signal(h.pid, syscall.SIGQUIT)
			h.waitGone(h.pid)
			if tc.stray && len(liveStrays(t, strays)) != len(workers) {
				t.Errorf("strays alive %v, want one per worker: the master exited with no pipe held open", liveStrays(t, strays))
			}
			checkRotated(t, path, tc.shared, workers)
		})
	}
}

// checkRotated checks the rotated worker log and the new one: each worker's
// lines run from seq 0 through the old file into the new one without a gap
// or a repeat, end in its last line, and none written after its USR1 is in
// the old file; shared with the master's log, the reopening is logged in
// the new file.
func checkRotated(t *testing.T, path string, shared bool, workers []int) {
	t.Helper()
	old, oldMaster := readChatter(t, path+".1", shared)
	cur, curMaster := readChatter(t, path, shared)
	for _, c := range old {
		if c.usr1 != 0 {
			t.Errorf("old file: %+v was written after the worker's USR1, after the reopen", c)
		}
	}
	next := map[int]int{}
	ended := map[int]bool{}
	for _, c := range append(old, cur...) {
		switch {
		case !slices.Contains(workers, c.pid):
			t.Errorf("line of pid %d, not a worker of %v", c.pid, workers)
		case ended[c.pid] || c.seq != next[c.pid]:
			t.Errorf("worker %d: seq %d (last seen: %v), want %d: a line lost, repeated or out of order",
				c.pid, c.seq, ended[c.pid], next[c.pid])
		}
		next[c.pid], ended[c.pid] = c.seq+1, c.last
	}
	for _, w := range workers {
		if !ended[w] {
			t.Errorf("worker %d: its last line is missing (after %d lines)", w, next[w])
		}
	}
	if !shared {
		return
	}
	if len(oldMaster) == 0 {
		t.Errorf("old file: none of the master's JSON lines")
	}
	if !slices.ContainsFunc(curMaster, func(r map[string]any) bool { return r["msg"] == "log file reopened" }) {
		t.Errorf("new file: no JSON line says the log was reopened: %v", curMaster)
	}
}

// liveStrays lists the live processes of helperChatter's stray file.
func liveStrays(t *testing.T, path string) []int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, f := range strings.Fields(string(data)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("stray file: %q", data)
		}
		if st, err := procs.Info(pid); err == nil && !st.Zombie() {
			out = append(out, pid)
		}
	}
	return out
}

// killStrays kills helperChatter's strays by pid, at the test's end.
func killStrays(t *testing.T, path string) {
	if _, err := os.Stat(path); err != nil {
		return
	}
	for _, pid := range liveStrays(t, path) {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}
