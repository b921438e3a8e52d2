//go:build linux

package procs

import (
	"encoding/binary"
	"errors"
	"io"
	"testing"
)

// TestTreeFollow: the tree grows with the forks of its processes and wakes
// on them and their execs, forgets each at its exit without waking (an exec
// from another thread than the main one reports the main one's exit), and
// ignores threads and other processes.
func TestTreeFollow(t *testing.T) {
	tr := tree{10: true}
	for _, c := range []struct {
		name string
		ev   procEvent
		want bool
	}{
		{name: "thread of a root", ev: procEvent{what: procEventFork, parent: 10, tgid: 10, thread: true}, want: false},
		{name: "fork of a root", ev: procEvent{what: procEventFork, parent: 10, tgid: 11}, want: true},
		{name: "fork of a child", ev: procEvent{what: procEventFork, parent: 11, tgid: 12}, want: true},
		{name: "fork of a stranger", ev: procEvent{what: procEventFork, parent: 99, tgid: 100}, want: false},
		{name: "exec of a grandchild", ev: procEvent{what: procEventExec, tgid: 12}, want: true},
		{name: "exec of a stranger", ev: procEvent{what: procEventExec, tgid: 100}, want: false},
		{name: "exit of a thread", ev: procEvent{what: procEventExit, tgid: 11, thread: true}, want: false},
		{name: "exit of a child", ev: procEvent{what: procEventExit, tgid: 11}, want: false},
		{name: "exec of the exited child", ev: procEvent{what: procEventExec, tgid: 11}, want: false},
		{name: "fork of the exited child's pid", ev: procEvent{what: procEventFork, parent: 11, tgid: 13}, want: false},
		{name: "unknown event", ev: procEvent{what: 0x200, tgid: 10}, want: false},
	} {
		if got := tr.follow(c.ev); got != c.want {
			t.Errorf("%s: follow(%+v) = %v, want %v", c.name, c.ev, got, c.want)
		}
	}
}

// TestParseProcEvent decodes the messages the kernel sends: the answer to
// a subscription, a fork (of a process and of a thread), an exit.
func TestParseProcEvent(t *testing.T) {
	msg := func(what uint32, ack uint32, fields ...uint32) []byte {
		b := subscription(0, false, ack)[16:] // a cn_msg to the proc connector
		b = b[:cnMsgLen]
		ev := make([]byte, procEventHdrLen+4*len(fields))
		ne := binary.NativeEndian
		ne.PutUint32(ev, what)
		for i, f := range fields {
			ne.PutUint32(ev[procEventHdrLen+4*i:], f)
		}
		return append(b, ev...)
	}
	if ev, ack, errno, ok := parseProcEvent(msg(procEventNone, 77, 1)); !ok || ev.what != procEventNone || ack != 77 || errno != 1 {
		t.Errorf("ack: %+v ack %d errno %d ok %v", ev, ack, errno, ok)
	}
	if ev, _, _, ok := parseProcEvent(msg(procEventFork, 0, 5, 5, 6, 6)); !ok || ev != (procEvent{what: procEventFork, parent: 5, tgid: 6}) {
		t.Errorf("fork: %+v ok %v", ev, ok)
	}
	if ev, _, _, ok := parseProcEvent(msg(procEventFork, 0, 5, 5, 7, 5)); !ok || !ev.thread {
		t.Errorf("thread: %+v ok %v", ev, ok)
	}
	if ev, _, _, ok := parseProcEvent(msg(procEventExit, 0, 6, 6, 0, 9)); !ok || ev != (procEvent{what: procEventExit, tgid: 6}) {
		t.Errorf("exit: %+v ok %v", ev, ok)
	}
	if _, _, _, ok := parseProcEvent(msg(procEventFork, 0, 5)); ok {
		t.Error("a short fork event parsed")
	}
}

// TestWatchTree: a watch rooted at a running helper wakes when the helper
// starts a child, and when that child, followed from its fork, starts one
// of its own (its exec); it never blocks the caller.
func TestWatchTree(t *testing.T) {
	h := startHelper(t, "spawner", helperOpts{})
	wake, stop, err := WatchTree([]int{h.cmd.Process.Pid})
	if errors.Is(err, errors.ErrUnsupported) {
		t.Skipf("no process events here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	defer stop() // a second call is a no-op
	select {
	case <-wake:
		t.Fatal("woken before the helper did anything")
	default:
	}
	if _, err := io.WriteString(h.stdin, "spawn\n"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-wake:
	case <-testContext(t).Done():
		t.Fatal("no wake-up for the helper's child")
	}
}
