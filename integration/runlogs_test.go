package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// helperLogWorker is TestRunWorkerLogRotate's worker. Every 10 ms it prints
// a numbered line, to stdout and stderr in turn; it counts USR1 (which baton
// passes on to the worker's group) and prints a last line when stopped
// (TERM). One goroutine does all three, so a signal never lands between a
// line and its number, and it starts no child: the shell worker it replaces
// lost both races (a TERM trap between echo and the count repeated a number;
// a group signal reaching a subshell before its trap ” killed it, and the
// shell's "Terminated" or "User defined signal 1" landed in the log).
func helperLogWorker([]string) int {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGTERM)
	tick := time.NewTicker(10 * time.Millisecond)
	out := [2]*os.File{os.Stdout, os.Stderr}
	pid, seq, usr1 := os.Getpid(), 0, 0
	for {
		select {
		case s := <-sigs:
			if s == syscall.SIGTERM {
				fmt.Printf("pid=%d seq=%d usr1=%d last\n", pid, seq, usr1)
				return 0
			}
			usr1++
		case <-tick.C:
			fmt.Fprintf(out[seq%2], "pid=%d seq=%d usr1=%d\n", pid, seq, usr1)
			seq++
		}
	}
}

var runLogsLine = regexp.MustCompile(`^pid=(\d+) seq=(\d+) usr1=(\d+)( last)?$`)

// runLogsLines parses a worker log into each worker's lines; any other line
// fails the test.
func runLogsLines(t *testing.T, path string) map[int][][3]int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	out := map[int][][3]int{} // pid: seq, usr1, last
	for _, l := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		if l == "" {
			continue
		}
		m := runLogsLine.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("%s: line %q is no worker line", filepath.Base(path), l)
		}
		pid, _ := strconv.Atoi(m[1])
		seq, _ := strconv.Atoi(m[2])
		u, _ := strconv.Atoi(m[3])
		last := 0
		if m[4] != "" {
			last = 1
		}
		out[pid] = append(out[pid], [3]int{seq, u, last})
	}
	return out
}

// TestRunWorkerLogRotate runs the built baton as logrotate meets it: the
// master logs JSON (--log-format from the config file) to --log-file, the
// workers' output goes to the worker log (BATON_WORKER_LOG_FILE); both
// files are renamed and the master gets USR1. The workers' output after
// their USR1 is in the new file, every worker's lines run on from the old
// file without a gap, a repeat or a torn line, none was restarted, and the
// master's new log says it reopened them.
func TestRunWorkerLogRotate(t *testing.T) {
	ctx := testContext(t)
	dir := t.TempDir()
	worker, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(envHelper, "log-worker")
	config := filepath.Join(dir, "app.conf")
	writeFile(t, config, "log-format = json\nworkers = 2\n", 0o644)
	logFile, workerLog := filepath.Join(dir, "baton.log"), filepath.Join(dir, "workers.log")
	t.Setenv("BATON_WORKER_LOG_FILE", workerLog)
	b := batonStart(ctx, t, "run", "--pidfile", filepath.Join(dir, "m.pid"), "--listen", "127.0.0.1:"+strconv.Itoa(freePort(t)),
		"--config", config, "--log-file", logFile, "--ready", "delay:100ms", "--stop-timeout", "5s", "--", worker)
	master := b.pid()
	workers := func() []int {
		var pids []int
		for _, p := range descendants(allProcs(), master) {
			if p.ppid == master && !p.zombie() {
				pids = append(pids, p.pid)
			}
		}
		slices.Sort(pids)
		return pids
	}
	writing := func(path string, minUSR1 int) func() (bool, error) {
		return func() (bool, error) {
			lines := runLogsLines(t, path)
			n := 0
			for _, ls := range lines {
				if slices.ContainsFunc(ls, func(l [3]int) bool { return l[1] >= minUSR1 }) {
					n++
				}
			}
			return n == 2, nil
		}
	}
	mustWait(ctx, t, 20*time.Second, "both workers writing to the worker log", writing(workerLog, 0))
	before := workers()
	for _, p := range []string{logFile, workerLog} {
		if err := os.Rename(p, p+".1"); err != nil {
			t.Fatal(err)
		}
	}
	sendSignal(t, master, syscall.SIGUSR1)
	mustWait(ctx, t, 20*time.Second, "both workers' lines after their USR1 in a new worker log", writing(workerLog, 1))
	if after := workers(); !slices.Equal(after, before) || len(after) != 2 {
		t.Errorf("workers %v after USR1, want %v still", after, before)
	}
	sendSignal(t, master, syscall.SIGQUIT)
	b.wait(t).wantCode(t, 0)

	old, cur := runLogsLines(t, workerLog+".1"), runLogsLines(t, workerLog)
	for _, pid := range before {
		for _, l := range old[pid] {
			if l[1] != 0 {
				t.Errorf("worker %d: seq %d in the old file was written after its USR1, after the reopen", pid, l[0])
			}
		}
		all := append(old[pid], cur[pid]...)
		for i, l := range all {
			if l[0] != i || (l[2] == 1) != (i == len(all)-1) {
				t.Errorf("worker %d: line %d is seq %d (last: %d) of %d lines: lost, repeated or out of order", pid, i, l[0], l[2], len(all))
				break
			}
		}
	}
	if len(old)+len(cur) == 0 || len(old) > 2 || len(cur) > 2 {
		t.Errorf("lines of pids %v and %v, want the workers %v", old, cur, before)
	}
	checkJSONLog(t, logFile+".1", "master started")
	checkJSONLog(t, logFile, "log file reopened")
}

// checkJSONLog checks that every line of path is a JSON object with a msg
// and that one says msg.
func checkJSONLog(t *testing.T, path, msg string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var rec struct {
			Msg   string `json:"msg"`
			Level string `json:"level"`
		}
		if err := json.Unmarshal([]byte(l), &rec); err != nil || rec.Msg == "" || rec.Level == "" {
			t.Errorf("%s: line %q is no JSON log record (%v)", filepath.Base(path), l, err)
		}
		found = found || rec.Msg == msg
	}
	if !found {
		t.Errorf("%s: no record says %q:\n%s", filepath.Base(path), msg, data)
	}
}
