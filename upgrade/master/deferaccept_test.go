//go:build linux

package master

import (
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// deferSecs reads TCP_DEFER_ACCEPT of l's socket.
func deferSecs(t *testing.T, l *listener) int {
	t.Helper()
	rc, err := l.file.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	if cerr := rc.Control(func(fd uintptr) {
		v, err = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_DEFER_ACCEPT)
	}); cerr != nil || err != nil {
		t.Fatal(cerr, err)
	}
	return v
}

// TestDeferAccept: --defer-accept sets TCP_DEFER_ACCEPT on the TCP sockets
// baton bound (and turns it off again), skips unix sockets and leaves
// systemd's alone; with it, a connection that has sent nothing is not
// handed to accept(2) until its request arrives.
func TestDeferAccept(t *testing.T) {
	dir := t.TempDir()
	var ls []*listener
	for _, spec := range []string{"127.0.0.1:0", "unix:d.sock", "127.0.0.1:0"} {
		s, err := parseListen(spec, dir)
		if err != nil {
			t.Fatal(err)
		}
		l, err := bind(s, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.close(true) })
		ls = append(ls, l)
	}
	tcp, activated := ls[0], ls[2]
	activated.fromSystemd = true
	if err := deferAccept(ls, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if got := deferSecs(t, tcp); got == 0 {
		t.Errorf("TCP_DEFER_ACCEPT %d on the bound socket, want it on", got)
	}
	if got := deferSecs(t, activated); got != 0 {
		t.Errorf("TCP_DEFER_ACCEPT %d on systemd's socket, want it untouched", got)
	}

	ln, err := net.FileListener(tcp.file)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", tcp.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		if a, err := ln.Accept(); err == nil {
			accepted <- a
		}
	}()
	select {
	case a := <-accepted:
		a.Close()
		t.Fatal("a connection that sent nothing was accepted")
	case <-time.After(200 * time.Millisecond):
	}
	if _, err := c.Write([]byte("GET / HTTP/1.0\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	select {
	case a := <-accepted:
		a.Close()
	case <-time.After(10 * time.Second):
		t.Fatal("the connection was not accepted once its request arrived")
	}

	if err := deferAccept(ls, 0); err != nil {
		t.Fatal(err)
	}
	if got := deferSecs(t, tcp); got != 0 {
		t.Errorf("TCP_DEFER_ACCEPT %d after turning it off", got)
	}
}
