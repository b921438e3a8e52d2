package procs

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
)

// Listener is one listening socket a process holds.
type Listener struct {
	Inode   uint64 `json:"inode"`
	FD      int    `json:"fd"`
	Network string `json:"network"` // "tcp", "tcp6" or "unix"
	Addr    string `json:"addr"`    // "127.0.0.1:8080", "[::1]:8080", "/run/app.sock", "@abstract"
}

// Listeners returns the listening TCP and unix stream/seqpacket sockets pid
// holds, one per file descriptor (a socket held twice appears twice), ordered
// by fd. Two processes holding a socket with the same Inode share it. A
// descriptor closed while the list is built is left out; reading another
// user's descriptors without CAP_SYS_PTRACE is an error wrapping
// fs.ErrPermission; a gone or zombie process one wrapping ErrGone.
func Listeners(pid int) ([]Listener, error) { return listeners(pid) }

// netSocket is one listening socket of a /proc/net table.
type netSocket struct {
	network string
	addr    string
}

// tcpListen is the TCP_LISTEN state as /proc/net/tcp prints it
// (include/net/tcp_states.h).
const tcpListen = "0A"

// A /proc/net table of a busy machine holds one line per socket, tens of
// thousands of them in TIME_WAIT: the parsers stream it without allocating
// per line and stop as soon as every inode in pending has been seen.
// pending nil means: read the whole table.

// parseNetTCP adds the listening sockets of a /proc/net/tcp or tcp6 table to
// into, keyed by inode, and removes every inode it sees from pending. Lines
// look like
//
//	sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
//	0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 41236 1 ...
func parseNetTCP(r io.Reader, network string, pending map[uint64]bool, into map[uint64]netSocket) error {
	sc := newTableScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := sc.Bytes()
		if n == 1 || len(bytes.TrimSpace(line)) == 0 {
			continue // header
		}
		var f [10][]byte
		rest := line
		for i := range f {
			f[i], rest = nextField(rest)
		}
		if len(f[9]) == 0 {
			return fmt.Errorf("parse %s table: %w: line %d is short", network, errMalformed, n)
		}
		inode, ok := parseDecimalU64(f[9])
		if !ok {
			return fmt.Errorf("parse %s table: %w: inode %q on line %d", network, errMalformed, f[9], n)
		}
		if pending != nil {
			if !pending[inode] {
				continue
			}
			delete(pending, inode)
		}
		if string(f[3]) == tcpListen {
			ap, err := decodeTCPAddr(string(f[1]))
			if err != nil {
				return fmt.Errorf("parse %s table: %w", network, err)
			}
			into[inode] = netSocket{network: network, addr: ap.String()}
		}
		if pending != nil && len(pending) == 0 {
			return nil
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read %s table: %w", network, err)
	}
	return nil
}

func newTableScanner(r io.Reader) *bufio.Scanner {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	return sc
}

// nextField returns the first space-separated field of b and what follows it.
func nextField(b []byte) (field, rest []byte) {
	b = bytes.TrimLeft(b, " ")
	end := bytes.IndexByte(b, ' ')
	if end < 0 {
		end = len(b)
	}
	return b[:end], b[end:]
}

// decodeTCPAddr decodes a local_address of /proc/net/tcp or tcp6: the
// address as 32-bit words, each printed with %08X in host byte order (so
// 127.0.0.1 is "0100007F" on little-endian machines), a colon and the port
// as %04X. See tcp4_seq_show and tcp6_seq_show (net/ipv4/tcp_ipv4.c,
// net/ipv6/tcp_ipv6.c).
func decodeTCPAddr(s string) (netip.AddrPort, error) {
	hexAddr, hexPort, ok := strings.Cut(s, ":")
	if !ok || len(hexPort) != 4 || (len(hexAddr) != 8 && len(hexAddr) != 32) {
		return netip.AddrPort{}, fmt.Errorf("%w: address %q", errMalformed, s)
	}
	port, err := strconv.ParseUint(hexPort, 16, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%w: port in %q", errMalformed, s)
	}
	var b [16]byte
	for w := 0; w < len(hexAddr)/8; w++ {
		v, err := strconv.ParseUint(hexAddr[8*w:8*w+8], 16, 32)
		if err != nil {
			return netip.AddrPort{}, fmt.Errorf("%w: address %q", errMalformed, s)
		}
		binary.NativeEndian.PutUint32(b[4*w:], uint32(v))
	}
	var addr netip.Addr
	if len(hexAddr) == 8 {
		addr = netip.AddrFrom4([4]byte(b[:4]))
	} else {
		addr = netip.AddrFrom16(b)
	}
	return netip.AddrPortFrom(addr, uint16(port)), nil
}

// soAcceptCon is __SO_ACCEPTCON (include/linux/net.h), the flag of a
// listening socket in /proc/net/unix.
const soAcceptCon = 1 << 16

// parseNetUnix adds the listening sockets of a /proc/net/unix table to into
// and removes every inode it sees from pending. Lines look like
//
//	Num       RefCount Protocol Flags    Type St Inode Path
//	0000000000000000: 00000002 00000000 00010000 0001 01 41240 /run/app.sock
//
// and are printed by unix_seq_show (net/unix/af_unix.c): the path follows the
// inode after one space, abstract names start with '@' (the kernel prints
// their NUL bytes as '@'). A path is printed unescaped, so one holding a
// newline spills onto a line of its own: such continuation lines do not
// start with "HEX:" and are skipped, and that socket's Addr is cut at the
// newline.
func parseNetUnix(r io.Reader, pending map[uint64]bool, into map[uint64]netSocket) error {
	sc := newTableScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := sc.Bytes()
		if n == 1 || len(line) == 0 {
			continue // header
		}
		var tok [7][]byte
		rest := line
		for k := range tok {
			tok[k], rest = nextField(rest)
		}
		num, ok := bytes.CutSuffix(tok[0], []byte(":"))
		if !ok || !isHex(num) {
			continue // continuation of a path holding a newline
		}
		inode, ok := parseDecimalU64(tok[6])
		if !ok {
			return fmt.Errorf("parse unix table: %w: inode %q on line %d", errMalformed, tok[6], n)
		}
		if pending != nil {
			if !pending[inode] {
				continue
			}
			delete(pending, inode)
		}
		flags, err := strconv.ParseUint(string(tok[3]), 16, 32)
		if err != nil {
			return fmt.Errorf("parse unix table: %w: flags %q on line %d", errMalformed, tok[3], n)
		}
		if flags&soAcceptCon != 0 {
			into[inode] = netSocket{network: "unix", addr: string(bytes.TrimPrefix(rest, []byte(" ")))}
		}
		if pending != nil && len(pending) == 0 {
			return nil
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read unix table: %w", err)
	}
	return nil
}

func isHex(s []byte) bool {
	if len(s) == 0 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// socketInode returns INODE from a /proc/PID/fd link "socket:[INODE]".
func socketInode(target string) (uint64, bool) {
	rest, ok := strings.CutPrefix(target, "socket:[")
	if !ok {
		return 0, false
	}
	num, ok := strings.CutSuffix(rest, "]")
	if !ok {
		return 0, false
	}
	return parseDecimalU64(num)
}
