package procs

// WatchTree wakes the caller when roots or a process they start afterwards
// (their children, the children's children...) forks or execs, as the
// kernel's process-event connector (netlink, CN_IDX_PROC) reports it: each
// such event makes the returned channel ready; events are coalesced while
// nobody receives. A receive says "look again", never what happened: the
// watch may miss events (a full socket buffer, which wakes it too), so a
// caller learns the state from /proc, and the channel only spares it from
// polling. Threads are not processes: their creation does not wake it.
// Exits do not either (a pidfd is the event for one): a process whose
// thread other than the main one calls execve(2) reports its main thread's
// exit first, and for a moment /proc shows it as a zombie, which a caller
// woken then would take for its death. stop ends the watch; a second call
// is a no-op.
//
// The connector needs CAP_NET_ADMIN in the initial user namespace and a
// caller in the initial pid namespace (its events carry those pids):
// elsewhere, and on other systems, WatchTree fails with an error wrapping
// errors.ErrUnsupported, and the caller polls.
func WatchTree(roots []int) (wake <-chan struct{}, stop func(), err error) {
	return watchTree(roots)
}

// procEvent is one event of the connector, by the process (thread group)
// it concerns: the kernel's struct proc_event, reduced.
type procEvent struct {
	what   uint32
	parent int // fork: the parent's thread group
	tgid   int // fork: the child's thread group; exec, exit: the process's
	thread bool
}

// Values of proc_event.what (include/uapi/linux/cn_proc.h).
const (
	procEventNone = 0x00000000
	procEventFork = 0x00000001
	procEventExec = 0x00000002
	procEventExit = 0x80000000
)

// tree is the set of processes a watch follows: the roots and the
// processes they fork, until each exits.
type tree map[int]bool

// follow updates the tree with ev and reports whether ev should wake the
// watch: a fork or exec in the tree. An exit only leaves the tree.
func (t tree) follow(ev procEvent) bool {
	switch ev.what {
	case procEventFork:
		if ev.thread || !t[ev.parent] {
			return false
		}
		t[ev.tgid] = true
		return true
	case procEventExec:
		return t[ev.tgid]
	case procEventExit:
		if !ev.thread {
			delete(t, ev.tgid)
		}
	}
	return false
}
