//go:build linux

package master

import (
	"fmt"
	"os"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/batonhq/baton/procs"
)

// Boot priority (--boot-nice): a worker starts with a nice value above the
// master's and gets the master's back once it is ready. While a new
// generation boots (an upgrade, a reload, a restart) its start-up work
// (loading a runtime and an application, warming caches) competes for the
// same CPUs as the generation that is serving; at a higher nice value the
// scheduler gives the serving workers the CPU first, which keeps their
// latency while the window lasts. The nice value is inherited at fork from
// the spawner thread (workers.go), so every thread and child of the worker
// has it from its first instruction; renice puts the whole process group
// back (setpriority(2) PRIO_PGRP reaches every thread of every process in
// it).

// maxNice is the highest nice value, the lowest priority.
const maxNice = 19

// threadNice is the calling thread's nice value (getpriority(2) returns 20
// minus it).
func threadNice() (int, error) {
	p, err := unix.Getpriority(unix.PRIO_PROCESS, 0)
	return 20 - p, err
}

// setThreadNice sets the calling thread's nice value.
func setThreadNice(n int) error { return unix.Setpriority(unix.PRIO_PROCESS, 0, n) }

// bootNiceOf is the nice value a worker starts at: base plus the increment,
// at most maxNice.
func bootNiceOf(base, increment int) int { return min(base+increment, maxNice) }

// renice sets the nice value of every thread of every process in the
// process group pgid. A thread being created while setpriority(2) walks
// the group can be missed (it copied its creator's value before it was
// listed: TestBootNice in CI), so the leader's threads are read back and
// the call repeated until they all have it; a thread created after that
// copies the new value.
func renice(pgid, n int) error {
	for range 10 {
		if err := unix.Setpriority(unix.PRIO_PGRP, pgid, n); err != nil {
			return err
		}
		if threadsAt(pgid, n) {
			return nil
		}
	}
	return fmt.Errorf("threads of process group %d keep missing nice %d", pgid, n)
}

// threadsAt reports whether every thread of pid runs at nice value n
// (procs.Stat.Nice of /proc/PID/task/TID/stat); a gone process or thread
// counts as done.
func threadsAt(pid, n int) bool {
	dir := "/proc/" + strconv.Itoa(pid) + "/task/"
	ents, err := os.ReadDir(dir)
	if err != nil {
		return true
	}
	for _, e := range ents {
		data, err := os.ReadFile(dir + e.Name() + "/stat")
		if err != nil {
			continue
		}
		if st, err := procs.ParseStat(data); err == nil && st.Nice != n {
			return false
		}
	}
	return true
}

// checkBootNice checks that this process may put a ready worker back to
// its own nice value: lowering a nice value needs CAP_SYS_NICE or a high
// enough RLIMIT_NICE (setpriority(2)). It tries on a thread of its own,
// which exits with the check, never on one the master keeps.
func checkBootNice(increment int) error {
	if increment == 0 {
		return nil
	}
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		done <- tryBootNice(increment)
	}()
	if err := <-done; err != nil {
		return fmt.Errorf("%w: boot-nice %d: %w", ErrConfig, increment, err)
	}
	return nil
}

// tryBootNice raises the calling thread's nice value by increment and
// lowers it back, as a worker's goes; on an error the thread may be left
// at the higher value.
func tryBootNice(increment int) error {
	base, err := threadNice()
	if err == nil {
		err = setThreadNice(bootNiceOf(base, increment))
	}
	if err == nil {
		if err = setThreadNice(base); err != nil {
			err = fmt.Errorf("putting a ready worker back to nice %d needs CAP_SYS_NICE or RLIMIT_NICE: %w", base, err)
		}
	}
	return err
}
