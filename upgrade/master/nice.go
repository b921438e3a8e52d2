//go:build linux

package master

import (
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
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
// process group pgid.
func renice(pgid, n int) error { return unix.Setpriority(unix.PRIO_PGRP, pgid, n) }

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
