//go:build linux

package procs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// The process-event connector (Documentation/driver-api/connector.rst,
// include/uapi/linux/cn_proc.h): a netlink socket of the NETLINK_CONNECTOR
// family bound to the CN_IDX_PROC group, subscribed with
// PROC_CN_MCAST_LISTEN, receives a struct proc_event per fork, exec and
// exit on the host.
const (
	cnIdxProc         = 1 // CN_IDX_PROC
	cnValProc         = 1 // CN_VAL_PROC
	procCNMcastListen = 1 // PROC_CN_MCAST_LISTEN
	procCNMcastIgnore = 2 // PROC_CN_MCAST_IGNORE
	cnMsgLen          = 20
	procEventHdrLen   = 16 // what, cpu, timestamp_ns
	// procEventFilter selects fork, exec and exit (struct proc_input's
	// event_type, Linux 6.6+): the kernel drops the rest of the host's
	// events (uid, comm, sid...) before they reach the socket.
	procEventFilter = procEventFork | procEventExec | procEventExit
	// eventsBuffer is the socket's receive buffer: a burst of forks on a
	// busy host that overflows it costs a wake-up, not a missed state.
	eventsBuffer = 4 << 20
)

func watchTree(roots []int) (<-chan struct{}, func(), error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_CONNECTOR)
	if err != nil {
		return nil, nil, fmt.Errorf("procs: process events: %w (%w)", err, errors.ErrUnsupported)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: cnIdxProc}); err != nil {
		unix.Close(fd)
		return nil, nil, fmt.Errorf("procs: process events: bind: %w (%w)", err, errors.ErrUnsupported)
	}
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, eventsBuffer) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, eventsBuffer)
	}
	t := tree{}
	for _, pid := range roots {
		t[pid] = true
	}
	wake := make(chan struct{}, 1)
	w := &eventWatch{fd: fd, tree: t, wake: wake}
	subscribed, err := w.subscribe()
	if err != nil || !subscribed {
		unix.Close(fd)
		if err == nil {
			err = errors.New("no answer to the subscription (not privileged, or not in the initial namespaces)")
		}
		return nil, nil, fmt.Errorf("procs: process events: %w (%w)", err, errors.ErrUnsupported)
	}
	// Then narrow it to forks, execs and exits (Linux 6.6+; older kernels
	// ignore a message of this length). The kernel answers a narrowed
	// subscription through the same filter, which lets no answer through:
	// the plain one above is the one that proves the connector works.
	_ = unix.Sendto(fd, subscription(procCNMcastListen, true, 0), 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
	// A non-blocking descriptor in an *os.File goes through the runtime's
	// poller: Close interrupts the blocked Read.
	w.file = os.NewFile(uintptr(fd), "cn_proc")
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.read()
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			// Balances the subscription on kernels that count listeners
			// globally (before 6.6, closing the socket does not).
			_ = unix.Sendto(fd, subscription(procCNMcastIgnore, false, 0), 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
			w.file.Close()
			<-done
		})
	}
	return wake, stop, nil
}

// eventWatch is one subscription: its socket, the tree it follows (only
// its reading goroutine touches it) and the channel it wakes.
type eventWatch struct {
	fd   int
	file *os.File
	tree tree
	wake chan struct{}
}

func (w *eventWatch) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// subscribe sends PROC_CN_MCAST_LISTEN and looks for the kernel's answer,
// which it queues on the socket before the send returns (the connector's
// callbacks run in the sender's context): ok false when there is none.
// The answer is told from other subscribers' by its cn_msg ack field, the
// one sent plus one (the kernel numbers its messages itself, seq is not
// kept). Events queued before it are followed.
func (w *eventWatch) subscribe() (ok bool, err error) {
	token := uint32(os.Getpid())<<8 | 1
	if err := unix.Sendto(w.fd, subscription(procCNMcastListen, false, token), 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return false, fmt.Errorf("subscribe: %w", err)
	}
	buf := make([]byte, 64<<10)
	for {
		n, from, err := unix.Recvfrom(w.fd, buf, unix.MSG_DONTWAIT)
		switch {
		case errors.Is(err, unix.EINTR), errors.Is(err, unix.ENOBUFS):
			continue
		case errors.Is(err, unix.EAGAIN):
			return false, nil
		case err != nil:
			return false, fmt.Errorf("subscribe: %w", err)
		case !fromKernel(from):
			continue
		}
		acked, ackErr := w.handle(buf[:n], token+1)
		if acked {
			if ackErr != 0 {
				return false, fmt.Errorf("subscribe: %w", ackErr)
			}
			return true, nil
		}
	}
}

// read follows the events until the socket is closed.
func (w *eventWatch) read() {
	rc, err := w.file.SyscallConn()
	if err != nil {
		return
	}
	buf := make([]byte, 64<<10)
	for {
		var n int
		var from unix.Sockaddr
		var rerr error
		err := rc.Read(func(fd uintptr) bool {
			n, from, rerr = unix.Recvfrom(int(fd), buf, unix.MSG_DONTWAIT)
			return !errors.Is(rerr, unix.EAGAIN) // else: wait in the poller
		})
		if err == nil {
			err = rerr
		}
		switch {
		case errors.Is(err, unix.ENOBUFS):
			// The buffer overflowed: events were lost, perhaps ours.
			w.poke()
		case errors.Is(err, unix.EINTR):
		case err != nil:
			return // closed
		case fromKernel(from):
			w.handle(buf[:n], 0)
		}
	}
}

// fromKernel reports whether a message came from the kernel (netlink port
// 0): a privileged process can send to the group too.
func fromKernel(from unix.Sockaddr) bool {
	nl, ok := from.(*unix.SockaddrNetlink)
	return ok && nl.Pid == 0
}

// handle follows the events of one datagram, waking the watch for those of
// its tree, and reports whether it held the kernel's answer acknowledging
// ack (0: none is expected) and that answer's error.
func (w *eventWatch) handle(b []byte, ack uint32) (acked bool, ackErr syscall.Errno) {
	msgs, err := syscall.ParseNetlinkMessage(b)
	if err != nil {
		w.poke()
		return false, 0
	}
	for _, m := range msgs {
		ev, msgAck, errno, ok := parseProcEvent(m.Data)
		if !ok {
			continue
		}
		if ev.what == procEventNone {
			if ack != 0 && msgAck == ack {
				acked, ackErr = true, errno
			}
			continue
		}
		if w.tree.follow(ev) {
			w.poke()
		}
	}
	return acked, ackErr
}

// parseProcEvent decodes a cn_msg holding a struct proc_event. For the
// kernel's answer to a subscription (what 0) it returns the cn_msg's ack
// field and the answer's error.
func parseProcEvent(b []byte) (ev procEvent, ack uint32, errno syscall.Errno, ok bool) {
	ne := binary.NativeEndian
	if len(b) < cnMsgLen+procEventHdrLen || ne.Uint32(b[0:]) != cnIdxProc || ne.Uint32(b[4:]) != cnValProc {
		return procEvent{}, 0, 0, false
	}
	ack = ne.Uint32(b[12:])
	data := b[cnMsgLen:]
	ev.what = ne.Uint32(data[0:])
	d := data[procEventHdrLen:]
	u32 := func(i int) int { return int(ne.Uint32(d[4*i:])) }
	switch ev.what {
	case procEventNone:
		if len(d) < 4 {
			return procEvent{}, 0, 0, false
		}
		return ev, ack, syscall.Errno(ne.Uint32(d)), true
	case procEventFork:
		if len(d) < 16 {
			return procEvent{}, 0, 0, false
		}
		// parent_pid, parent_tgid, child_pid, child_tgid
		ev.parent, ev.tgid, ev.thread = u32(1), u32(3), u32(2) != u32(3)
	case procEventExec, procEventExit:
		if len(d) < 8 {
			return procEvent{}, 0, 0, false
		}
		// process_pid, process_tgid
		ev.tgid, ev.thread = u32(1), u32(0) != u32(1)
	default:
		return procEvent{}, 0, 0, false
	}
	return ev, ack, 0, true
}

// subscription builds the netlink message that (un)subscribes: a cn_msg to
// the proc connector holding the operation, with the event filter when
// filtered, and ack in its ack field.
func subscription(op uint32, filtered bool, ack uint32) []byte {
	payload := 4
	if filtered {
		payload = 8
	}
	b := make([]byte, unix.NLMSG_HDRLEN+cnMsgLen+payload)
	ne := binary.NativeEndian
	ne.PutUint32(b[0:], uint32(len(b)))
	ne.PutUint16(b[4:], unix.NLMSG_DONE)
	c := b[unix.NLMSG_HDRLEN:]
	ne.PutUint32(c[0:], cnIdxProc)
	ne.PutUint32(c[4:], cnValProc)
	ne.PutUint32(c[12:], ack)
	ne.PutUint16(c[16:], uint16(payload))
	ne.PutUint32(c[cnMsgLen:], op)
	if filtered {
		ne.PutUint32(c[cnMsgLen+4:], procEventFilter)
	}
	return b
}
