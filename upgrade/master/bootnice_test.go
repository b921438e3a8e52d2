//go:build linux

package master_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/batonhq/baton/upgrade/statusfile"
	"golang.org/x/sys/unix"
)

// threadNices reads the nice value of every thread of pid (field 19 of
// /proc/PID/task/TID/stat), by thread id.
func threadNices(t *testing.T, pid int) map[int]int {
	t.Helper()
	dir := "/proc/" + strconv.Itoa(pid) + "/task"
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]int{}
	for _, e := range ents {
		data, err := os.ReadFile(filepath.Join(dir, e.Name(), "stat"))
		if err != nil {
			continue // the thread ended
		}
		f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
		n, err := strconv.Atoi(f[16]) // f[0] is field 3: nice is field 19
		if err != nil {
			t.Fatalf("%s/%s/stat: %v", dir, e.Name(), err)
		}
		tid, _ := strconv.Atoi(e.Name())
		out[tid] = n
	}
	return out
}

// TestBootNice: with --boot-nice a worker runs every thread at the
// master's nice value plus the increment until it is ready, and at the
// master's once it is; the serving generation keeps the master's while a
// new one (here a HUP's, never ready) boots; of the master's own threads
// only the spawner has the boot value, so the runtime never cloned one
// from it.
func TestBootNice(t *testing.T) {
	prio, err := unix.Getpriority(unix.PRIO_PROCESS, 0)
	if err != nil {
		t.Fatal(err)
	}
	base := 20 - prio // the raw getpriority(2) returns 20 - nice
	if base+3 > 19 {
		t.Skipf("the test runs at nice %d: no room for an increment", base)
	}
	h := newHarness(t, testOpts{Workers: 2, BootNice: 3}, "")
	h.opts.EnvFile = filepath.Join(h.dir, "app.env")
	writeFile(t, h.opts.EnvFile, "WORKER_VERSION=good\n")
	h.start()
	want := func(pids []int, nice int, what string) {
		t.Helper()
		for _, pid := range pids {
			for tid, n := range threadNices(t, pid) {
				if n != nice {
					t.Errorf("%s worker %d: thread %d at nice %d, want %d", what, pid, tid, n, nice)
				}
			}
		}
	}
	st := h.waitReady(h.pid)
	ready := workerPIDs(st, "ready")
	if len(ready) != 2 {
		t.Fatalf("ready workers %v, want 2", ready)
	}
	want(ready, base, "ready")

	writeFile(t, h.opts.EnvFile, "WORKER_MODE=unready\nWORKER_VERSION=bad\n")
	h.signal(h.pid, syscall.SIGHUP)
	st = h.waitStatus(h.pid, "generation 2 starting", func(s statusfile.Master) bool {
		return s.Generation == 2 && len(workerPIDs(s, "starting")) == 2
	})
	want(workerPIDs(st, "starting"), base+3, "booting")
	want(workerPIDs(st, "ready"), base, "serving")

	raised := 0
	for tid, n := range threadNices(t, h.pid) {
		switch n {
		case base:
		case base + 3:
			raised++
		default:
			t.Errorf("master thread %d at nice %d", tid, n)
		}
	}
	if raised > 1 {
		t.Errorf("%d master threads at the boot nice value, want only the spawner's", raised)
	}
}
