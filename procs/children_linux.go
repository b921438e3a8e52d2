//go:build linux

package procs

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync/atomic"
)

// useChildrenFile lets tests compare the /proc/PID/task/TID/children path
// with the scan of all of /proc.
var useChildrenFile = true

// childrenFast counts the lists the children files answered (for tests).
var childrenFast atomic.Int64

func children(pid int) ([]Stat, error) {
	if _, err := readLiveStat(pid); err != nil {
		return nil, err
	}
	var out []Stat
	ok := false
	if useChildrenFile {
		var err error
		if out, ok, err = childrenFromTasks(pid); err != nil {
			return nil, fmt.Errorf("procs: children of %d: %w", pid, err)
		}
	}
	if !ok {
		var err error
		if out, err = childrenByScan(pid); err != nil {
			return nil, fmt.Errorf("procs: children of %d: %w", pid, err)
		}
	}
	slices.SortFunc(out, func(a, b Stat) int {
		return cmp.Or(cmp.Compare(a.Start, b.Start), cmp.Compare(a.PID, b.PID))
	})
	return out, nil
}

// childrenTries bounds the reads of the children files before the scan of
// all of /proc takes over: each retry means the list changed while it was
// read.
const childrenTries = 3

// childrenFromTasks lists pid's children from /proc/PID/task/TID/children
// (CONFIG_PROC_CHILDREN), in time proportional to pid's threads and
// children rather than to every process on the host. ok is false when the
// files are missing, or the list kept changing while it was read: then the
// caller scans.
//
// proc(5) calls the files unreliable unless every child is frozen: the
// kernel walks the thread's list of children one entry at a time, dropping
// its lock between entries (and at each read(2)); when the entry it stopped
// at has left the list, it finds its place again by counting, and an entry
// removed before that place makes it skip a child that did not move. New
// children are added at the list's tail, where they shift nothing. So a
// child can be missed only if a child already listed left the list (exited
// and was reaped, or moved to another thread of pid when its thread exited)
// during the read. Both are checked after the read: every listed child is
// read again and must still be pid's (a zombie still is: it leaves the list
// only when reaped), and the set of threads must not have changed. A read
// that passes both checks missed nothing; one that fails is retried. (A
// listed child reaped and its pid given to a new child of pid between the
// read and the check would pass: that takes the kernel's cyclic pid
// allocator a full turn of pid_max within microseconds.) Nor can a thread
// be seen that started after the first listing of the threads, forked and
// exited before the second: its children move to the tail of a thread
// already read (see doc.go, Children).
func childrenFromTasks(pid int) (out []Stat, ok bool, err error) {
	d, err := openProcDir(pid)
	if err != nil {
		return nil, false, err
	}
	defer d.close()
	for range childrenTries {
		tids, pids, ok, err := readChildrenFiles(d)
		if err != nil || !ok {
			return nil, false, err
		}
		out, changed, err := confirmChildren(pid, pids)
		if err != nil {
			return nil, false, err
		}
		if changed {
			continue
		}
		after, err := taskNames(d)
		if err != nil {
			return nil, false, err
		}
		if slices.Equal(tids, after) {
			childrenFast.Add(1)
			return out, true, nil
		}
	}
	return nil, false, nil
}

// readChildrenFiles reads the children file of each of d's threads: the
// thread ids (sorted) and the children's pids. ok is false when the files
// do not exist (no CONFIG_PROC_CHILDREN) or a thread exited meanwhile.
func readChildrenFiles(d procDir) (tids []string, pids []int, ok bool, err error) {
	tids, err = taskNames(d)
	if err != nil {
		return nil, nil, false, err
	}
	for _, tid := range tids {
		b, err := d.read("task/" + tid + "/children")
		if errors.Is(err, ErrGone) {
			// The thread exited (its children moved to another one), or
			// there are no children files; either way: scan.
			if err := stillLive(d); err != nil {
				return nil, nil, false, err
			}
			return nil, nil, false, nil
		}
		if err != nil {
			return nil, nil, false, err
		}
		for f := range bytes.FieldsSeq(b) {
			n, ok := parseDecimal(string(f))
			if !ok || n <= 0 {
				return nil, nil, false, fmt.Errorf("%s: %w: %q", d.path("task/"+tid+"/children"), errMalformed, f)
			}
			pids = append(pids, n)
		}
	}
	return tids, pids, true, nil
}

// taskNames lists the thread ids of d's process, sorted.
func taskNames(d procDir) ([]string, error) {
	names, err := d.subNames("task")
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	return names, nil
}

// confirmChildren reads each listed child: changed when one is gone or no
// longer pid's (the list changed while it was read). The live ones are
// returned; zombies are left out.
func confirmChildren(pid int, pids []int) (out []Stat, changed bool, err error) {
	boot, err := bootTime()
	if err != nil {
		return nil, false, err
	}
	for _, n := range pids {
		full, err := brief(n, boot)
		if errors.Is(err, ErrGone) {
			return nil, true, nil // reaped since it was listed
		}
		if err != nil {
			return nil, false, err
		}
		if full.PPID != pid {
			return nil, true, nil
		}
		if !full.Zombie() {
			out = append(out, full)
		}
	}
	return out, false, nil
}

// childrenByScan lists pid's children by reading the stat file of every
// process in /proc.
func childrenByScan(pid int) ([]Stat, error) {
	pids, err := allPIDs()
	if err != nil {
		return nil, err
	}
	boot, err := bootTime()
	if err != nil {
		return nil, err
	}
	var out []Stat
	for _, n := range pids {
		st, err := readStat(n)
		if errors.Is(err, ErrGone) {
			continue // exited since the directory was read
		}
		if err != nil {
			return nil, err
		}
		if st.PPID != pid || st.Zombie() {
			continue
		}
		full, err := brief(n, boot)
		if errors.Is(err, ErrGone) {
			continue
		}
		if err != nil {
			return nil, err
		}
		// Between the two reads the child may have exited and its pid been
		// reused by an unrelated process: keep it only if it is the same one.
		if full.Start != st.Start || full.PPID != pid || full.Zombie() {
			continue
		}
		out = append(out, full)
	}
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
