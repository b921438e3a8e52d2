//go:build linux

package procs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// Listening TCP sockets come from the kernel's sock_diag netlink interface
// (sock_diag(7), what ss(8) uses) when the process shares our network
// namespace: the kernel filters by state, so the answer costs the same on a
// machine with a hundred thousand TIME_WAIT sockets, whose /proc/net/tcp takes
// a tenth of a second just to generate. /proc/PID/net/tcp remains the path for
// other namespaces and kernels without inet_diag.

// Layouts from include/uapi/linux/inet_diag.h.
const (
	inetDiagSockIDLen = 48 // sport, dport, src[4], dst[4], if, cookie[2]
	inetDiagReqV2Len  = 8 + inetDiagSockIDLen
	inetDiagMsgLen    = 4 + inetDiagSockIDLen + 5*4 // ... expires, rqueue, wqueue, uid, inode
	tcpStateListen    = 10
)

// sameNetns reports whether d's process is in our network namespace.
func sameNetns(d procDir) (bool, error) {
	var theirs, ours unix.Stat_t
	if err := unix.Fstatat(d.fd, "ns/net", &theirs, 0); err != nil {
		return false, d.pathError("stat", "ns/net", err)
	}
	if err := unix.Stat("/proc/self/ns/net", &ours); err != nil {
		return false, &os.PathError{Op: "stat", Path: "/proc/self/ns/net", Err: err}
	}
	return theirs.Dev == ours.Dev && theirs.Ino == ours.Ino, nil
}

// diagTCPListeners adds every listening TCP socket of our network namespace
// to into, IPv4 as "tcp" and IPv6 as "tcp6" (as /proc/net/tcp and tcp6 list
// them).
func diagTCPListeners(into map[uint64]netSocket) error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return fmt.Errorf("procs: sock_diag socket: %w", err)
	}
	defer unix.Close(fd)
	// A dump that raced with changes to the socket tables is flagged
	// NLM_F_DUMP_INTR and may miss sockets: take a fresh one.
	var seq uint32
	for range 3 {
		found := make(map[uint64]netSocket)
		var err error
		for _, family := range []uint8{unix.AF_INET, unix.AF_INET6} {
			seq++
			if err = diagDump(fd, seq, family, found); err != nil {
				break
			}
		}
		if errors.Is(err, errDumpInterrupted) {
			continue
		}
		if err != nil {
			return err
		}
		maps.Copy(into, found)
		return nil
	}
	return fmt.Errorf("procs: sock_diag: %w three times", errDumpInterrupted)
}

var errDumpInterrupted = errors.New("dump interrupted by concurrent changes")

func diagDump(fd int, seq uint32, family uint8, into map[uint64]netSocket) error {
	req := make([]byte, unix.NLMSG_HDRLEN+inetDiagReqV2Len)
	ne := binary.NativeEndian
	ne.PutUint32(req[0:], uint32(len(req)))
	ne.PutUint16(req[4:], unix.SOCK_DIAG_BY_FAMILY)
	ne.PutUint16(req[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	ne.PutUint32(req[8:], seq)
	body := req[unix.NLMSG_HDRLEN:]
	body[0] = family
	body[1] = unix.IPPROTO_TCP
	ne.PutUint32(body[4:], 1<<tcpStateListen)
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("procs: sock_diag send: %w", err)
	}
	network := "tcp"
	if family == unix.AF_INET6 {
		network = "tcp6"
	}
	buf := make([]byte, 64<<10)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("procs: sock_diag receive: %w", err)
		}
		done, err := parseDiagMessages(buf[:n], seq, network, into)
		if err != nil || done {
			return err
		}
	}
}

// parseDiagMessages parses one datagram of a sock_diag dump and reports
// whether it ended the dump.
func parseDiagMessages(b []byte, seq uint32, network string, into map[uint64]netSocket) (done bool, err error) {
	msgs, err := syscall.ParseNetlinkMessage(b)
	if err != nil {
		return false, fmt.Errorf("procs: sock_diag: %w", err)
	}
	for _, m := range msgs {
		if m.Header.Seq != seq {
			continue
		}
		if m.Header.Flags&unix.NLM_F_DUMP_INTR != 0 {
			return false, errDumpInterrupted
		}
		switch m.Header.Type {
		case unix.NLMSG_DONE:
			return true, nil
		case unix.NLMSG_ERROR:
			if len(m.Data) < 4 {
				return false, fmt.Errorf("procs: sock_diag: %w: short error message", errMalformed)
			}
			errno := -int32(binary.NativeEndian.Uint32(m.Data))
			if errno == 0 {
				continue // an acknowledgement
			}
			return false, fmt.Errorf("procs: sock_diag: %w", syscall.Errno(errno))
		case unix.SOCK_DIAG_BY_FAMILY:
			inode, ap, err := parseInetDiagMsg(m.Data)
			if err != nil {
				return false, err
			}
			into[inode] = netSocket{network: network, addr: ap.String()}
		}
	}
	return false, nil
}

// parseInetDiagMsg decodes struct inet_diag_msg: ports and addresses are in
// network byte order, the rest in host order.
func parseInetDiagMsg(b []byte) (uint64, netip.AddrPort, error) {
	if len(b) < inetDiagMsgLen {
		return 0, netip.AddrPort{}, fmt.Errorf("procs: sock_diag: %w: message of %d bytes", errMalformed, len(b))
	}
	family := b[0]
	id := b[4 : 4+inetDiagSockIDLen]
	port := binary.BigEndian.Uint16(id[0:])
	var addr netip.Addr
	switch family {
	case unix.AF_INET:
		addr = netip.AddrFrom4([4]byte(id[4:8]))
	case unix.AF_INET6:
		addr = netip.AddrFrom16([16]byte(id[4:20]))
	default:
		return 0, netip.AddrPort{}, fmt.Errorf("procs: sock_diag: %w: family %d", errMalformed, family)
	}
	inode := binary.NativeEndian.Uint32(b[4+inetDiagSockIDLen+16:])
	return uint64(inode), netip.AddrPortFrom(addr, port), nil
}
