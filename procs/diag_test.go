//go:build linux

package procs

import (
	"encoding/binary"
	"errors"
	"maps"
	"net/netip"
	"os"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// diagMsg builds a struct inet_diag_msg as the kernel sends it.
func diagMsg(ap netip.AddrPort, inode uint32) []byte {
	b := make([]byte, inetDiagMsgLen)
	b[0] = unix.AF_INET
	if ap.Addr().Is6() {
		b[0] = unix.AF_INET6
	}
	b[1] = tcpStateListen
	binary.BigEndian.PutUint16(b[4:], ap.Port())
	copy(b[8:24], ap.Addr().AsSlice())
	binary.NativeEndian.PutUint32(b[4+inetDiagSockIDLen+16:], inode)
	return b
}

// nlmsg wraps data in a netlink header.
func nlmsg(typ uint16, seq uint32, data []byte) []byte {
	b := make([]byte, unix.NLMSG_HDRLEN, unix.NLMSG_HDRLEN+len(data)+3)
	binary.NativeEndian.PutUint32(b[0:], uint32(unix.NLMSG_HDRLEN+len(data)))
	binary.NativeEndian.PutUint16(b[4:], typ)
	binary.NativeEndian.PutUint32(b[8:], seq)
	b = append(b, data...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func TestParseDiagMessages(t *testing.T) {
	errMsg := make([]byte, 20)
	eacces := -int32(unix.EACCES)
	binary.NativeEndian.PutUint32(errMsg, uint32(eacces))
	ack := make([]byte, 20)
	for _, tc := range []struct {
		name     string
		datagram []byte
		want     map[uint64]netSocket
		done     bool
		err      error
	}{
		{
			name: "listeners then done",
			datagram: concat(
				nlmsg(unix.SOCK_DIAG_BY_FAMILY, 7, diagMsg(netip.MustParseAddrPort("127.0.0.1:8080"), 41236)),
				nlmsg(unix.SOCK_DIAG_BY_FAMILY, 7, diagMsg(netip.MustParseAddrPort("[::1]:443"), 41237)),
				nlmsg(unix.NLMSG_DONE, 7, make([]byte, 4)),
			),
			want: map[uint64]netSocket{
				41236: {network: "tcp", addr: "127.0.0.1:8080"},
				41237: {network: "tcp", addr: "[::1]:443"},
			},
			done: true,
		},
		{
			name:     "more to come",
			datagram: nlmsg(unix.SOCK_DIAG_BY_FAMILY, 7, diagMsg(netip.MustParseAddrPort("0.0.0.0:80"), 5)),
			want:     map[uint64]netSocket{5: {network: "tcp", addr: "0.0.0.0:80"}},
		},
		{
			name:     "other sequence ignored",
			datagram: nlmsg(unix.SOCK_DIAG_BY_FAMILY, 8, diagMsg(netip.MustParseAddrPort("0.0.0.0:80"), 5)),
			want:     map[uint64]netSocket{},
		},
		{name: "interrupted dump", datagram: withFlags(nlmsg(unix.SOCK_DIAG_BY_FAMILY, 7, diagMsg(netip.MustParseAddrPort("0.0.0.0:80"), 5)), unix.NLM_F_DUMP_INTR), want: map[uint64]netSocket{}, err: errDumpInterrupted},
		{name: "error", datagram: nlmsg(unix.NLMSG_ERROR, 7, errMsg), want: map[uint64]netSocket{}, err: syscall.EACCES},
		{name: "ack", datagram: nlmsg(unix.NLMSG_ERROR, 7, ack), want: map[uint64]netSocket{}},
		{name: "short message", datagram: nlmsg(unix.SOCK_DIAG_BY_FAMILY, 7, make([]byte, 20)), want: map[uint64]netSocket{}, err: errMalformed},
		{name: "bad family", datagram: nlmsg(unix.SOCK_DIAG_BY_FAMILY, 7, make([]byte, inetDiagMsgLen)), want: map[uint64]netSocket{}, err: errMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := make(map[uint64]netSocket)
			done, err := parseDiagMessages(tc.datagram, 7, "tcp", got)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err = %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil || done != tc.done || !maps.Equal(got, tc.want) {
				t.Errorf("parseDiagMessages = %v, %v, %v; want %v, %v", got, done, err, tc.want, tc.done)
			}
		})
	}
}

func concat(bs ...[]byte) []byte {
	var out []byte
	for _, b := range bs {
		out = append(out, b...)
	}
	return out
}

// The sock_diag dump and /proc/net/tcp agree on this machine's listeners.
func TestDiagMatchesProc(t *testing.T) {
	viaDiag := make(map[uint64]netSocket)
	if err := diagTCPListeners(viaDiag); err != nil {
		t.Skipf("no sock_diag: %v", err)
	}
	viaProc := make(map[uint64]netSocket)
	for _, tbl := range []struct{ path, network string }{{"/proc/self/net/tcp", "tcp"}, {"/proc/self/net/tcp6", "tcp6"}} {
		f, err := os.Open(tbl.path)
		if err != nil {
			t.Fatal(err)
		}
		err = parseNetTCP(f, tbl.network, nil, viaProc)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	// Listeners may come and go between the two reads (other tests on the
	// machine): compare those present in both, and require overlap.
	common := 0
	for inode, s := range viaDiag {
		if p, ok := viaProc[inode]; ok {
			common++
			if p != s {
				t.Errorf("inode %d: sock_diag %+v, /proc %+v", inode, s, p)
			}
		}
	}
	if len(viaDiag) > 0 && common == 0 {
		t.Errorf("sock_diag %v and /proc %v share no listener", viaDiag, viaProc)
	}
}

func withFlags(msg []byte, flags uint16) []byte {
	binary.NativeEndian.PutUint16(msg[6:], flags)
	return msg
}
