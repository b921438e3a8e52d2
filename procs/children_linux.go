//go:build linux

package procs

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"slices"
)

func children(pid int) ([]Stat, error) {
	if _, err := readLiveStat(pid); err != nil {
		return nil, err
	}
	// /proc/PID/task/TID/children would be cheaper but lists only children
	// of that one thread and needs CONFIG_PROC_CHILDREN; scan every process.
	pids, err := allPIDs()
	if err != nil {
		return nil, fmt.Errorf("procs: children of %d: %w", pid, err)
	}
	var out []Stat
	for _, n := range pids {
		st, err := readStat(n)
		if errors.Is(err, ErrGone) {
			continue // exited since the directory was read
		}
		if err != nil {
			return nil, fmt.Errorf("procs: children of %d: %w", pid, err)
		}
		if st.PPID != pid || st.Zombie() {
			continue
		}
		full, err := Info(n)
		if errors.Is(err, ErrGone) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("procs: children of %d: %w", pid, err)
		}
		// Between the two reads the child may have exited and its pid been
		// reused by an unrelated process: keep it only if it is the same one.
		if full.Start != st.Start || full.PPID != pid || full.Zombie() {
			continue
		}
		out = append(out, full)
	}
	slices.SortFunc(out, func(a, b Stat) int {
		return cmp.Or(cmp.Compare(a.Start, b.Start), cmp.Compare(a.PID, b.PID))
	})
	return out, nil
}

func group(pgid int) ([]Identity, error) {
	if pgid <= 0 {
		return nil, fmt.Errorf("procs: invalid process group %d", pgid)
	}
	pids, err := allPIDs()
	if err != nil {
		return nil, fmt.Errorf("procs: process group %d: %w", pgid, err)
	}
	var out []Identity
	for _, n := range pids {
		st, err := readStat(n)
		if errors.Is(err, ErrGone) {
			continue // exited since the directory was read
		}
		if err != nil {
			return nil, fmt.Errorf("procs: process group %d: %w", pgid, err)
		}
		if st.Group == pgid && !st.Zombie() {
			out = append(out, st.Identity())
		}
	}
	return out, nil
}

// allPIDs lists the processes in /proc, in ascending order. Some may be
// gone by the time the caller looks at them.
func allPIDs() ([]int, error) {
	f, err := os.Open("/proc")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, name := range names {
		if pid, ok := parseDecimal(name); ok && pid > 0 {
			pids = append(pids, pid) // not "self", "net", "sys", ...
		}
	}
	slices.Sort(pids)
	return pids, nil
}
